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


def check_labels(y: jax.Array, classes: int) -> tuple[jax.Array, jax.Array]:
  """Flags integer labels outside ``[0, classes)`` inside a compiled step.

  Args:
    y: integer labels of any shape.
    classes: the number of classes (a Python int).

  Returns:
    ``(labels, bad)``: the labels clipped into range (so that a loss computed
    from them has finite gradients) and a bool scalar, true if any label was
    out of range. A loss made NaN with ``jnp.where(bad, nan, loss)`` then makes
    the meta-step skip its update instead of silently dropping the example.
  """
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"labels must be integers in [0, {classes}); got dtype {y.dtype}.")
  bad = jnp.any((y < 0) | (y >= classes))
  return jnp.clip(y, 0, classes - 1), bad


def cross_entropy_loss(apply_fn: ApplyFn) -> Callable:
  """Softmax cross-entropy of logits ``apply_fn(params, x)`` against int labels.

  A label outside ``[0, classes)`` (``classes`` = the number of logits) makes
  the loss NaN and sets the aux ``bad_labels`` to 1, so the meta-step skips the
  update and reports why (``metrics["bad_labels"]``).

  Returns:
    ``loss_fn(params, x, y) -> (loss, {"accuracy": ..., "bad_labels": ...})``
    for ``y`` of shape ``(n,)`` with integer class labels.
  """

  def loss_fn(params, x, y):
    logits = apply_fn(params, x)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
      raise ValueError(f"logits must be (n, classes) for labels {y.shape}; got {logits.shape}.")
    labels, bad = check_labels(y, logits.shape[-1])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(logits.dtype))
    return jnp.where(bad, jnp.nan, loss), {"accuracy": acc, "bad_labels": bad.astype(logits.dtype)}

  return _with_model(loss_fn, apply_fn)


def binary_cross_entropy_loss(apply_fn: ApplyFn) -> Callable:
  """Sigmoid cross-entropy of one logit per example against labels in {0, 1}.

  Labels may be ints in {0, 1} or probabilities in ``[0, 1]``; one outside
  ``[0, 1]`` makes the loss NaN and sets the aux ``bad_labels`` to 1 (see
  ``cross_entropy_loss``).

  Returns:
    ``loss_fn(params, x, y) -> (loss, {"accuracy": ..., "bad_labels": ...})``
    for ``y`` of shape ``(n,)`` or ``(n, 1)``; the model outputs one logit per
    example.
  """

  def loss_fn(params, x, y):
    logits = apply_fn(params, x).reshape(y.shape)
    bad = jnp.any((y < 0) | (y > 1))
    labels = jnp.clip(y, 0, 1).astype(logits.dtype)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
    acc = jnp.mean(((logits > 0).astype(logits.dtype) == labels).astype(logits.dtype))
    return jnp.where(bad, jnp.nan, loss), {"accuracy": acc, "bad_labels": bad.astype(logits.dtype)}

  return _with_model(loss_fn, apply_fn)
