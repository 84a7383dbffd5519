"""MAML++ (Antoniou, Edwards and Storkey, 2019)."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

import optax

from jmeta._base import AdaptResult, MetaLearner, PyTree, Task
from jmeta._inner import LossFn, Mask, call_loss, inner_loop, resolve_mask
from jmeta._losses import ApplyFn
from jmeta._remat import Remat, check_remat
from jmeta.algorithms._gradient_based import adapted_predict, check_apply_fn, check_steps


def per_step_sgd(lrs: PyTree, steps: int) -> optax.GradientTransformation:
  """SGD with a learning rate per parameter leaf and per step (MAML++'s LSLR).

  Args:
    lrs: a pytree shaped like the parameters with one ``(steps,)`` array of
      rates per leaf (``None`` where the parameters hold ``None``).
    steps: the number of rates per leaf; later steps reuse the last one.

  Returns:
    An optax transformation whose update at step ``t`` (counted in its state)
    is ``-lr[min(t, steps - 1)] * grad`` leaf by leaf.
  """

  def init_fn(params):
    del params
    return optax.ScaleByScheduleState(count=jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    j = jnp.minimum(state.count, steps - 1)
    new = jax.tree.map(lambda lr, g: -lr[j].astype(g.dtype) * g, lrs, updates)
    return new, optax.ScaleByScheduleState(count=state.count + 1)

  return optax.GradientTransformation(init_fn, update_fn)


def multi_step_weights(step: jax.Array, steps: int, anneal_steps: int) -> jax.Array:
  """The weights of the query losses after each inner step (multi-step loss).

  Antoniou et al.'s schedule: every weight starts at ``1 / steps``; over
  ``anneal_steps`` meta-iterations the non-final weights decay linearly to a
  floor of ``0.03 / steps`` while the final one grows so that they sum to one;
  from ``anneal_steps`` on only the final query loss counts. With
  ``anneal_steps = 0`` the final loss alone is used from the start.

  Args:
    step: the meta-iteration (an int scalar, may be traced).
    steps: the number of inner steps ``S`` (static).
    anneal_steps: meta-iterations of the multi-step phase (static).

  Returns:
    Weights, shape ``(steps,)``, summing to one.
  """
  final_only = jax.nn.one_hot(steps - 1, steps)
  if anneal_steps <= 0 or steps == 1:
    return final_only
  step = jnp.asarray(step).astype(final_only.dtype)
  decay = (1.0 / steps) / anneal_steps
  floor = 0.03 / steps
  non_final = jnp.maximum(1.0 / steps - step * decay, floor)
  final = jnp.minimum(1.0 / steps + step * (steps - 1) * decay, 1.0 - (steps - 1) * floor)
  annealed = jnp.concatenate([jnp.full((steps - 1,), non_final), final.reshape(1)])
  return jnp.where(step < anneal_steps, annealed, final_only)


def maml_plus_plus(
    loss_fn: LossFn,
    *,
    steps: int = 5,
    init_lr: float = 0.1,
    per_step: Optional[Mask] = None,
    first_order_steps: int = 0,
    multi_step_steps: int = 0,
    first_order: bool = False,
    remat: Remat = False,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """MAML++: MAML with learned per-step rates, multi-step loss and annealed order.

  Of Antoniou et al.'s fixes this implements:

  * **LSLR**: a learned inner learning rate per parameter tensor ("layer") and
    per inner step; the inner update of step ``i`` is ``p - lr[p][i] * grad``.
  * **Multi-step loss**: the outer objective is the weighted sum of the query
    losses after every inner step, the weights annealed towards the final step
    over ``multi_step_steps`` meta-iterations (:func:`multi_step_weights`), read
    from ``task_loss``'s ``step`` argument.
  * **Derivative-order annealing**: first-order meta-gradients for the first
    ``first_order_steps`` meta-iterations, second order afterwards, in one
    compiled program (``lax.cond`` on the meta-iteration selects the branch).
  * **Per-step batch normalisation** (BNWB): the leaves selected by
    ``per_step`` (e.g. ``lambda p: jmeta.path_mask(p, "norm")``: the norm
    layers' scale and offset) get one copy per inner step; step ``i`` uses copy
    ``i`` for its support forward pass and for the query loss after it. These
    leaves are meta-learned but not adapted in the inner loop.

  Normalisation statistics policy: the model normalises with the statistics of
  the batch it is given (transductive, at meta-training and meta-test alike),
  which is what Antoniou et al.'s reference code does too (its batch-norm layer
  always runs in training mode), so the per-step *running* statistics (BNRS)
  that MAML++ describes are never used for normalisation and are not kept. A
  model with running statistics would need state threaded through ``loss_fn``.

  Evaluating with more inner steps than ``steps`` (``adapt(..., steps=n)``)
  reuses the last step's rates and norm copies for the extra steps.

  Args:
    loss_fn: ``loss_fn(params, x, y) -> loss`` or ``(loss, aux)``.
    steps: inner steps ``S`` (>= 1).
    init_lr: initial value of every per-step learning rate.
    per_step: mask (pytree of bools or ``params -> mask``) of the leaves with
      one copy per inner step; ``None``: no per-step leaves.
    first_order_steps: meta-iterations trained with first-order
      meta-gradients before switching to second order.
    multi_step_steps: meta-iterations of the multi-step loss (0: final query
      loss only).
    first_order: first order throughout (overrides ``first_order_steps``).
    remat: memory policy of the inner unroll (``False``, ``True``, ``"sqrt"``,
      ``"log"``; see ``jmeta.checkpointed_scan``). Same numbers for all.
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  Returns:
    A ``MetaLearner`` with meta-parameters ``{"params": params (per-step leaves
    with a leading axis of size S), "lr": {one (S,) array per adapted leaf,
    None for the per-step leaves}}``.

  References:
    Antoniou, Edwards and Storkey, "How to train your MAML", ICLR 2019.
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}.")
  num_steps = check_steps(steps)
  if num_steps < 1:
    raise ValueError(f"steps must be >= 1 for maml_plus_plus; got {steps!r}.")
  if not init_lr > 0:
    raise ValueError(f"init_lr must be positive; got {init_lr!r}.")
  for name, v in (("first_order_steps", first_order_steps), ("multi_step_steps", multi_step_steps)):
    check_steps(v, name)
  check_remat(remat)
  apply_fn = check_apply_fn(apply_fn, loss_fn)

  def _per_step_flags(params) -> list[bool]:
    if per_step is None:
      return [False] * len(jax.tree.leaves(params))
    return resolve_mask(per_step, params)

  def init(key, params):
    del key
    flags = _per_step_flags(params)
    leaves, treedef = jax.tree.flatten(params)
    stacked = [jnp.broadcast_to(l, (num_steps, *jnp.shape(l))) + 0 if f else l
               for l, f in zip(leaves, flags)]
    lrs = [None if f else jnp.full((num_steps,), init_lr, jnp.result_type(l))
           for l, f in zip(leaves, flags)]
    if all(flags):
      raise ValueError("per_step selects every parameter: nothing is left to adapt.")
    return {"params": jax.tree.unflatten(treedef, stacked), "lr": jax.tree.unflatten(treedef, lrs)}

  def _at_step(params, i):
    """The model parameters of inner step ``i``: copy ``min(i, S - 1)`` of the per-step leaves."""
    flags = _per_step_flags(params)
    leaves, treedef = jax.tree.flatten(params)
    j = jnp.minimum(i, num_steps - 1)
    return jax.tree.unflatten(treedef, [l[j] if f else l for l, f in zip(leaves, flags)])

  def _unroll(meta_params, sx, sy, n: int, first: bool, observe=None):
    """``jmeta.inner_loop`` with the per-step rates (LSLR) and norm copies (BNWB)."""
    params = meta_params["params"]
    adapted = [not f for f in _per_step_flags(params)]
    return inner_loop(loss_fn, params, sx, sy, per_step_sgd(meta_params["lr"], num_steps), n,
                      first_order=first, remat=remat, mask=adapted, step_params=_at_step,
                      observe=observe)

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    n = num_steps if steps is None else check_steps(steps)
    return _unroll(meta_params, x, y, n, first_order)

  def _initial(meta_params):
    """The un-adapted model parameters (per-step leaves at step 0)."""
    return _at_step(meta_params["params"], 0)

  def _loss(meta_params, task: Task, step, steps: Optional[int], first: bool):
    n = num_steps if steps is None else check_steps(steps)
    p0 = jax.lax.stop_gradient(_initial(meta_params))
    loss_before, aux_before = call_loss(loss_fn, p0, task.query_x, task.query_y)
    if n == 0:
      objective, aux = call_loss(loss_fn, _initial(meta_params), task.query_x, task.query_y)
      support, _ = call_loss(loss_fn, p0, task.support_x, task.support_y)
      s_losses, q_last, q_aux_last = support.reshape(1), objective, aux
    else:
      adapted, (q_losses, q_aux) = _unroll(
          meta_params, task.support_x, task.support_y, n, first,
          observe=lambda p: call_loss(loss_fn, p, task.query_x, task.query_y))
      s_losses = adapted.losses
      weights = (multi_step_weights(step, n, multi_step_steps) if n == num_steps
                 else jax.nn.one_hot(n - 1, n))
      objective = jnp.sum(weights.astype(q_losses.dtype) * q_losses)
      q_last, q_aux_last = q_losses[-1], {k: v[-1] for k, v in q_aux.items()}
    metrics = {"query_loss": q_last, "query_loss_before": loss_before,
               "support_loss_before": s_losses[0], "support_loss": s_losses[-1],
               "multi_step_loss": objective}
    metrics.update({f"query_{k}": v for k, v in q_aux_last.items()})
    metrics.update({f"query_{k}_before": v for k, v in aux_before.items()})
    return objective, metrics

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    return _loss(meta_params, task, step, steps, first_order)

  def task_grad(meta_params, task: Task, step=0):
    def grad(first):
      return lambda mp: jax.grad(_loss, has_aux=True)(mp, task, step, None, first)
    if first_order or first_order_steps == 0:
      return grad(first_order)(meta_params)
    return jax.lax.cond(jnp.asarray(step) < first_order_steps, grad(True), grad(False),
                        meta_params)

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad,
                     predict=adapted_predict(adapt, apply_fn, "maml_plus_plus"))
