"""MAML, first-order MAML, Meta-SGD and ANIL."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import MetaLearner
from jmeta._inner import LossFn, Mask
from jmeta._losses import ApplyFn
from jmeta._remat import Remat
from jmeta.algorithms._gradient_based import check_optimizer, gradient_based


def _keep(key, params):
  del key
  return params


def _identity(meta_params):
  return meta_params


def maml(
    loss_fn: LossFn,
    inner_opt: Optional[optax.GradientTransformation] = None,
    *,
    steps: int = 1,
    first_order: bool = False,
    remat: Remat = False,
    second_order_steps: Optional[int] = None,
    metrics_before: bool = True,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Model-Agnostic Meta-Learning.

  The meta-parameters are the model's initial parameters. Each task adapts them
  with ``steps`` steps of ``inner_opt`` on its support set; the outer objective
  is the query loss at the adapted parameters, differentiated through the whole
  inner loop (second order) unless ``first_order``.

  Args:
    loss_fn: ``loss_fn(params, x, y) -> loss`` or ``(loss, aux_dict)``.
    inner_opt: any optax transformation (default ``optax.sgd(0.01)``); it is
      differentiated through, including its state (e.g. Adam's moments). For
      Adam-like optimizers pass ``eps_root > 0`` (``optax.adam(lr,
      eps_root=1e-8)``): the derivative of ``sqrt(nu)`` is infinite where a
      gradient entry is exactly zero (e.g. dead ReLUs), which makes the
      second-order meta-gradient NaN (the meta-step's guard then skips it).
    steps: number of inner steps.
    first_order: first-order MAML (inner gradients in ``stop_gradient``).
    remat: memory policy of the inner unroll: ``False``, ``True`` (checkpoint
      each step), ``"sqrt"`` or ``"log"`` (nested checkpointing, memory
      growing like ``sqrt(steps)`` or ``log(steps)``; see
      ``jmeta.checkpointed_scan``). Same numbers, less memory, more compute.
    second_order_steps: only the last ``second_order_steps`` inner steps
      carry second-order terms, the earlier ones are first order (``None``:
      all).
    metrics_before: also report ``query_loss_before`` (and the loss's aux
      metrics before adaptation): one more forward pass over each task's query
      set, outside the gradient. ``False`` drops it (cheaper meta-steps).
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  Returns:
    A ``MetaLearner``; its meta-parameters are the model parameters.

  Examples:
    >>> learner = jmeta.maml(loss_fn, optax.sgd(0.01), steps=5)
    >>> step = jmeta.make_meta_step(learner, optax.adam(1e-3))

  References:
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation
    of Deep Networks", ICML 2017.
  """
  opt = check_optimizer(optax.sgd(0.01) if inner_opt is None else inner_opt)
  return gradient_based(loss_fn, init=_keep, params_of=_identity,
                        inner_opt_of=lambda mp: opt, steps=steps,
                        first_order=first_order, remat=remat,
                        second_order_steps=second_order_steps, metrics_before=metrics_before,
                        apply_fn=apply_fn, name="maml")


def fomaml(loss_fn: LossFn, inner_opt: Optional[optax.GradientTransformation] = None,
           *, steps: int = 1, remat: Remat = False, metrics_before: bool = True,
           apply_fn: Optional[ApplyFn] = None) -> MetaLearner:
  """First-order MAML: ``maml(..., first_order=True)``.

  The meta-gradient is the query-loss gradient at the adapted parameters.

  References:
    Finn, Abbeel and Levine, ICML 2017, section 5.2.
  """
  return maml(loss_fn, inner_opt, steps=steps, first_order=True, remat=remat,
              metrics_before=metrics_before, apply_fn=apply_fn)


def _per_parameter_sgd(lrs) -> optax.GradientTransformation:
  """SGD whose learning rate is a pytree shaped like the parameters."""

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda a, g: -a * g, lrs, updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def meta_sgd(
    loss_fn: LossFn,
    *,
    steps: int = 1,
    init_lr: float = 0.01,
    first_order: bool = False,
    remat: Remat = False,
    second_order_steps: Optional[int] = None,
    metrics_before: bool = True,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Meta-SGD: MAML with per-parameter inner learning rates learned too.

  The meta-parameters are ``{"params": initialisation, "lr": rates}`` where
  ``lr`` has the shape of ``params``; the inner update is
  ``params - lr * grad`` (elementwise), and both are meta-learned.

  Args:
    loss_fn: ``loss_fn(params, x, y)``.
    steps: number of inner steps.
    init_lr: initial value of every learning rate.
    first_order: drop second-order terms (the rates still get gradients).
    remat: inner-unroll memory policy (``False``, ``True``, ``"sqrt"``, ``"log"``).
    second_order_steps: only the last ``second_order_steps`` inner steps are
      second order.
    metrics_before: also report ``query_loss_before`` (and the loss's aux
      metrics before adaptation): one more forward pass over each task's query
      set, outside the gradient. ``False`` drops it (cheaper meta-steps).
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  References:
    Li, Zhou, Chen and Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
    Learning", arXiv:1707.09835, 2017.
  """
  if not init_lr > 0:
    raise ValueError(f"init_lr must be positive; got {init_lr!r}.")

  def init(key, params):
    del key
    lrs = jax.tree.map(lambda p: jnp.full(jnp.shape(p), init_lr, jnp.result_type(p)), params)
    return {"params": params, "lr": lrs}

  return gradient_based(loss_fn, init=init, params_of=lambda mp: mp["params"],
                        inner_opt_of=lambda mp: _per_parameter_sgd(mp["lr"]),
                        steps=steps, first_order=first_order, remat=remat,
                        second_order_steps=second_order_steps, metrics_before=metrics_before,
                        apply_fn=apply_fn, name="meta_sgd")


def anil(
    loss_fn: LossFn,
    inner_opt: Optional[optax.GradientTransformation] = None,
    *,
    adapt: Mask,
    steps: int = 1,
    first_order: bool = False,
    remat: Remat = False,
    second_order_steps: Optional[int] = None,
    metrics_before: bool = True,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """ANIL (Almost No Inner Loop): MAML that adapts only a sub-tree.

  Args:
    loss_fn: ``loss_fn(params, x, y)``.
    inner_opt: inner optax transformation (default ``optax.sgd(0.01)``).
    adapt: which parameters the inner loop adapts: a pytree of bools shaped
      like the parameters, or a callable ``params -> such a pytree`` (see
      ``jmeta.path_mask``). The others stay fixed in the inner loop and are
      learned only by the outer loop.
    steps: number of inner steps.
    first_order: drop second-order terms.
    remat: inner-unroll memory policy (``False``, ``True``, ``"sqrt"``, ``"log"``).
    second_order_steps: only the last ``second_order_steps`` inner steps are
      second order.
    metrics_before: also report ``query_loss_before`` (and the loss's aux
      metrics before adaptation): one more forward pass over each task's query
      set, outside the gradient. ``False`` drops it (cheaper meta-steps).
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  References:
    Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR 2020.
  """
  if adapt is None:
    raise ValueError("anil needs adapt=: a mask of the parameters to adapt.")
  opt = check_optimizer(optax.sgd(0.01) if inner_opt is None else inner_opt)
  return gradient_based(loss_fn, init=_keep, params_of=_identity,
                        inner_opt_of=lambda mp: opt, steps=steps,
                        first_order=first_order, remat=remat, mask=adapt,
                        second_order_steps=second_order_steps, metrics_before=metrics_before,
                        apply_fn=apply_fn, name="anil")
