"""Loss functions ``loss_fn(params, x, y)`` built from a model's ``apply``."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

ApplyFn = Callable[[object, jax.Array], jax.Array]


def _with_model(loss_fn: Callable, apply_fn: ApplyFn) -> Callable:
  """Records the model on the loss as ``loss_fn.apply_fn`` (learners' ``predict`` applies it)."""
  loss_fn.apply_fn = apply_fn
  return loss_fn


def mse_loss(apply_fn: ApplyFn) -> Callable:
  """Mean squared error of ``apply_fn(params, x)`` against ``y``.

  Args:
    apply_fn: the model, ``apply_fn(params, x) -> predictions`` of ``y``'s shape.

  Returns:
    ``loss_fn(params, x, y) -> scalar``, with the model as ``loss_fn.apply_fn``
    (what a learner's ``predict`` applies).
  """

  def loss_fn(params, x, y):
    pred = apply_fn(params, x)
    if pred.shape != y.shape:
      raise ValueError(f"predictions have shape {pred.shape} but targets {y.shape}.")
    return jnp.mean((pred - y) ** 2)

  return _with_model(loss_fn, apply_fn)


def cross_entropy_loss(apply_fn: ApplyFn) -> Callable:
  """Softmax cross-entropy of logits ``apply_fn(params, x)`` against int labels.

  Returns:
    ``loss_fn(params, x, y) -> (loss, {"accuracy": ...})`` for ``y`` of shape
    ``(n,)`` with integer class labels.
  """

  def loss_fn(params, x, y):
    logits = apply_fn(params, x)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
      raise ValueError(f"logits must be (n, classes) for labels {y.shape}; got {logits.shape}.")
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(logits.dtype))
    return loss, {"accuracy": acc}

  return _with_model(loss_fn, apply_fn)


def binary_cross_entropy_loss(apply_fn: ApplyFn) -> Callable:
  """Sigmoid cross-entropy of one logit per example against labels in {0, 1}.

  Returns:
    ``loss_fn(params, x, y) -> (loss, {"accuracy": ...})`` for ``y`` of shape
    ``(n,)`` or ``(n, 1)``; the model outputs one logit per example.
  """

  def loss_fn(params, x, y):
    logits = apply_fn(params, x).reshape(y.shape)
    labels = y.astype(logits.dtype)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
    acc = jnp.mean(((logits > 0).astype(logits.dtype) == labels).astype(logits.dtype))
    return loss, {"accuracy": acc}

  return _with_model(loss_fn, apply_fn)
