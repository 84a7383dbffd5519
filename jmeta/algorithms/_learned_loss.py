"""Learned losses (ML^3): a small network is the inner loss; the true loss is the outer one."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner, PyTree, Task
from jmeta._inner import LossFn, call_loss, inner_loop
from jmeta._remat import Remat, check_remat
from jmeta.algorithms._gradient_based import (adapted_predict, check_optimizer, check_steps,
                                              query_metrics)

LossParams = PyTree
ApplyFn = Callable[[PyTree, jax.Array], jax.Array]


class LearnedLoss(NamedTuple):
  """A parametric loss.

  Attributes:
    init: ``init(key) -> loss_params``.
    loss_fn: ``loss_fn(loss_params, apply_fn) -> fn`` where ``fn(params, x, y)``
      is a scalar loss usable anywhere jmeta takes a ``loss_fn`` (e.g.
      ``jmeta.inner_loop``).
    num_features: input width of the network.
  """

  init: Callable[[jax.Array], LossParams]
  loss_fn: Callable[[LossParams, ApplyFn], LossFn]
  num_features: int


def _features(pred: jax.Array, y: jax.Array) -> jax.Array:
  """Per output element ``(pred, target, pred - target)``, or for integer labels
  and logits ``(logit, log_softmax, one_hot)``; shape ``(n, outputs, 3)``."""
  n = pred.shape[0]
  if jnp.issubdtype(y.dtype, jnp.integer) and pred.ndim == 2 and y.shape == (n,):
    target = jax.nn.one_hot(y, pred.shape[1], dtype=pred.dtype)
    return jnp.stack([pred, jax.nn.log_softmax(pred, axis=-1), target], axis=-1)
  if pred.shape != y.shape:
    raise ValueError(f"predictions have shape {pred.shape} but targets {y.shape}.")
  p, t = pred.reshape(n, -1), y.reshape(n, -1).astype(pred.dtype)
  return jnp.stack([p, t, p - t], axis=-1)


def loss_network(*, hidden: Sequence[int] = (32, 32), inputs: int = 0) -> LearnedLoss:
  """An element-wise learned loss ``mean_ij f(pred_ij, y_ij [, x_i])``.

  ``f`` is a softplus MLP (smooth, so inner gradients and their derivatives are
  well behaved) applied to every output element of every example; for
  regression its features are ``(pred, target, pred - target)``, for integer
  labels with logits ``(logit, log_softmax(logits), one_hot(label))``. With
  ``inputs > 0`` the example's flattened input (of that width) is appended.

  Args:
    hidden: widths of the hidden layers.
    inputs: width of the flattened model input to feed the network (0: none).

  Returns:
    A ``LearnedLoss``.

  References:
    Bechtle et al., "Meta-Learning via Learned Loss", ICPR 2021.
  """
  hidden = tuple(hidden)
  if not all(isinstance(h, int) and h >= 1 for h in hidden):
    raise ValueError(f"hidden must be a sequence of positive ints; got {hidden!r}.")
  if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 0:
    raise ValueError(f"inputs must be a non-negative int (0: no inputs); got {inputs!r}.")
  num_features = 3 + inputs
  widths = (num_features,) + hidden + (1,)

  def init(key: jax.Array) -> LossParams:
    keys = jax.random.split(key, len(widths) - 1)
    return {"layers": [{"w": jax.random.normal(k, (a, b)) / math.sqrt(a), "b": jnp.zeros((b,))}
                       for k, a, b in zip(keys, widths[:-1], widths[1:])]}

  def loss_fn(loss_params: LossParams, apply_fn: ApplyFn) -> LossFn:
    try:
      w0 = loss_params["layers"][0]["w"]
    except (KeyError, TypeError, IndexError) as e:
      raise ValueError("loss_params must be {'layers': [{'w', 'b'}, ...]} as made by"
                       " loss_network(...).init(key).") from e
    if w0.shape[0] != num_features:
      raise ValueError(f"loss_params take {w0.shape[0]} features but this loss_network has"
                       f" {num_features} (inputs={inputs}); build both with the same config.")

    def fn(params, x, y):
      pred = apply_fn(params, x)
      h = _features(pred, y)
      if inputs:
        flat = x.reshape(x.shape[0], -1).astype(h.dtype)
        if flat.shape[1] != inputs:
          raise ValueError(f"loss_network(inputs={inputs}) got inputs of width {flat.shape[1]}.")
        flat = jnp.broadcast_to(flat[:, None, :], h.shape[:2] + (inputs,))
        h = jnp.concatenate([h, flat], axis=-1)
      h = h.reshape(-1, num_features)
      layers = loss_params["layers"]
      for layer in layers[:-1]:
        h = jax.nn.softplus(h @ layer["w"].astype(h.dtype) + layer["b"].astype(h.dtype)[None, :])
      out = h @ layers[-1]["w"].astype(h.dtype) + layers[-1]["b"].astype(h.dtype)[None, :]
      return jnp.mean(out)

    return fn

  return LearnedLoss(init=init, loss_fn=loss_fn, num_features=num_features)


def learned_loss(
    apply_fn: ApplyFn,
    task_loss_fn: LossFn,
    inner_opt: Optional[optax.GradientTransformation] = None,
    *,
    steps: int = 1,
    network: Optional[LearnedLoss] = None,
    learn_init: bool = True,
    first_order: bool = False,
    remat: Remat = False,
) -> MetaLearner:
  """Meta-learns the inner-loop loss (ML^3).

  The inner loop takes ``steps`` steps of ``inner_opt`` on the *learned* loss of
  the support set; the outer objective is the *true* loss ``task_loss_fn`` on
  the query set after adaptation, differentiated through the inner loop into
  the loss network's parameters (and into the initialisation if
  ``learn_init``). Meta-parameters: ``{"params": init, "loss": loss_params}``.

  Args:
    apply_fn: the model, ``apply_fn(params, x) -> predictions``.
    task_loss_fn: the true loss ``loss_fn(params, x, y)`` (e.g.
      ``jmeta.mse_loss(apply_fn)``), used for the outer objective and metrics.
    inner_opt: inner optax transformation (default ``optax.sgd(0.01)``).
    steps: number of inner steps.
    network: the ``LearnedLoss`` (default ``loss_network()``).
    learn_init: also meta-learn the initial parameters (as MAML); otherwise
      they are fixed and get a zero meta-gradient.
    first_order: stop gradients through inner gradients (the loss network then
      gets no gradient: kept for completeness, not useful here).
    remat: memory policy of the inner unroll (``False``, ``True``, ``"sqrt"``,
      ``"log"``; see ``jmeta.checkpointed_scan``). Same numbers for all.

  Returns:
    A ``MetaLearner``. Metrics: the usual ones computed with the true loss
    (``support_loss`` included) plus ``learned_support_loss(_before)``.

  References:
    Bechtle, Molchanov, Chebotar, Grefenstette, Righetti, Sukhatme and Meier,
    "Meta-Learning via Learned Loss", ICPR 2021 (arXiv:1906.05374).
  """
  if not callable(apply_fn) or not callable(task_loss_fn):
    raise TypeError("apply_fn and task_loss_fn must be callable.")
  net = loss_network() if network is None else network
  if not isinstance(net, LearnedLoss):
    raise TypeError(f"network must be a LearnedLoss (e.g. loss_network()); got {type(net).__name__}.")
  opt = check_optimizer(optax.sgd(0.01) if inner_opt is None else inner_opt)
  default_steps = check_steps(steps)
  check_remat(remat)

  def init(key, params):
    return {"params": params, "loss": net.init(key)}

  def params_of(meta_params):
    p = meta_params["params"]
    return p if learn_init else jax.lax.stop_gradient(p)

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    n = default_steps if steps is None else check_steps(steps)
    return inner_loop(net.loss_fn(meta_params["loss"], apply_fn), params_of(meta_params), x, y,
                      opt, n, first_order=first_order, remat=remat)

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    del step
    before = params_of(meta_params)
    adapted = adapt(meta_params, task.support_x, task.support_y, steps=steps)
    loss, metrics = query_metrics(task_loss_fn, before, adapted.params, task, adapted)
    metrics["learned_support_loss_before"] = metrics["support_loss_before"]
    metrics["learned_support_loss"] = metrics["support_loss"]
    after = jax.lax.stop_gradient(adapted.params)
    metrics["support_loss_before"] = call_loss(
        task_loss_fn, jax.lax.stop_gradient(before), task.support_x, task.support_y)[0]
    metrics["support_loss"] = call_loss(task_loss_fn, after, task.support_x, task.support_y)[0]
    return loss, metrics

  def task_grad(meta_params, task: Task, step=0):
    return jax.grad(task_loss, has_aux=True)(meta_params, task, step)

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad,
                     predict=adapted_predict(adapt, apply_fn, "learned_loss"))
