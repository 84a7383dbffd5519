"""The inner loop: ``lax.scan`` of ``jax.grad`` steps with any optax optimizer."""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, Params, PyTree
from jmeta._remat import Remat, check_remat, checkpointed_scan

LossFn = Callable[..., Any]
Mask = Any  # a pytree of bools shaped like the params, or a callable params -> such a pytree
StepParams = Callable[[Params, jax.Array], Params]  # (params, inner step index) -> params


def call_loss(loss_fn: LossFn, params: Params, x: jax.Array, y: jax.Array):
  """Calls ``loss_fn(params, x, y)`` and returns ``(loss, aux_dict)``.

  ``loss_fn`` may return a scalar or a ``(scalar, dict)`` pair; the dict holds
  extra scalar metrics such as ``accuracy``.
  """
  out = loss_fn(params, x, y)
  if isinstance(out, tuple):
    if len(out) != 2 or not isinstance(out[1], dict):
      raise TypeError(
          "loss_fn must return a scalar or a (scalar, dict) pair; got a tuple of"
          f" length {len(out)}.")
    loss, aux = out
  else:
    loss, aux = out, {}
  if jnp.ndim(loss) != 0:
    raise ValueError(
        f"loss_fn must return a scalar loss; got shape {jnp.shape(loss)}.")
  return loss, aux


def resolve_mask(mask: Mask, params: Params) -> list[bool]:
  """Returns the mask as a flat list of Python bools, one per parameter leaf.

  Raises:
    ValueError: if the mask does not match the parameters or selects nothing.
  """
  if mask is None:
    return [True] * len(jax.tree.leaves(params))
  if callable(mask):
    mask = mask(params)
  treedef = jax.tree.structure(params)
  try:
    flat = treedef.flatten_up_to(mask)
  except (ValueError, TypeError) as e:
    raise ValueError(
        "mask must be a pytree of bools with the structure of the parameters"
        f" ({treedef}); got {jax.tree.structure(mask)}.") from e
  flat = [bool(m) for m in flat]
  if not any(flat):
    raise ValueError("mask selects no parameter: at least one leaf must be True.")
  return flat


def inner_loop(
    loss_fn: LossFn,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    opt: optax.GradientTransformation,
    steps: int,
    *,
    first_order: bool = False,
    remat: Remat = False,
    mask: Optional[list[bool]] = None,
    second_order_steps: Optional[int] = None,
    truncation: Optional[int] = None,
    step_params: Optional[StepParams] = None,
    observe: Optional[Callable[[Params], PyTree]] = None,
) -> Union[AdaptResult, tuple[AdaptResult, PyTree]]:
  """Adapts ``params`` to ``(x, y)`` with ``steps`` steps of ``opt``.

  The loop is a ``lax.scan`` of static length, so compile time does not grow
  with ``steps``. It is differentiable end to end (second order through every
  step, including the optimizer's own state), unless ``first_order`` is set, in
  which case each inner gradient is wrapped in ``stop_gradient``.

  Optimizers that take extra arguments (``optax.GradientTransformationExtraArgs``,
  e.g. a Newton-type step) receive ``value``, ``grad`` and ``value_fn`` (the
  loss of the adapted sub-tree), ``inputs`` and ``targets`` (``x``, ``y``) and
  ``full_params`` (sub-tree -> all parameters, for ``jmeta.gauss_newton``).
  Per-step hyperparameters (a learning rate per inner step, as MAML++'s) live
  in the optimizer: its state counts the steps (``optax.inject_hyperparams``
  with a schedule, or any transformation that reads a step count).

  Two ways of cutting the backward pass, which compose:

  * ``second_order_steps=k``: only the last ``k`` steps carry second-order
    terms; the inner gradients of the earlier steps are wrapped in
    ``stop_gradient`` (first order, so their Jacobian is the identity: the
    meta-gradient still reaches the initial parameters, and those steps keep
    almost nothing for the backward pass).
  * ``truncation=k``: truncated back-propagation through time. The unroll is
    cut into segments of ``k`` steps (the last one shorter if ``k`` does not
    divide ``steps``); the parameters and optimizer state enter every segment
    but the first through ``stop_gradient``, so no gradient flows from a
    segment into the earlier ones. The gradient of a sum of per-step losses is
    then the sum of each segment's own gradient (learned optimizers, Metz et
    al. 2019). The values are unchanged.

  Args:
    loss_fn: ``loss_fn(params, x, y) -> loss`` or ``(loss, aux)``.
    params: the initial parameters (a pytree).
    x: support inputs, shape ``(n, ...)``.
    y: support targets, shape ``(n, ...)``.
    opt: any optax transformation; its updates are applied with
      ``optax.apply_updates``.
    steps: number of inner steps (a Python int, >= 0).
    first_order: drop second-order terms (FOMAML).
    remat: memory policy of the unroll (see ``jmeta.checkpointed_scan``):
      ``False`` (keep every step), ``True``/``"step"`` (``jax.checkpoint``
      each step), ``"sqrt"`` or ``"log"`` (nested checkpointing: memory grows
      like ``sqrt(steps)`` or ``log(steps)``). Same numbers for all.
    mask: optional flat list of bools (see ``resolve_mask``); only selected
      leaves are adapted, the others are held fixed (ANIL).
    second_order_steps: only the last ``second_order_steps`` steps are second
      order (see above); ``None``: all steps.
    truncation: length of the truncated back-propagation segments (see
      above); ``None``: back-propagate through the whole unroll.
    step_params: ``step_params(params, i) -> params`` gives the parameters the
      loss sees at inner step ``i`` (an int32 scalar), e.g. MAML++'s per-step
      copies of the norm layers, selected from a leaf with a leading step
      axis. The returned parameters and the final loss are those of the last
      step taken (``i = max(steps - 1, 0)``). ``None``: the parameters
      themselves.
    observe: ``observe(params) -> pytree`` evaluated after every step on the
      parameters just updated (as ``step_params`` shows them), e.g. the query
      loss after each step (MAML++'s multi-step loss).

  Returns:
    ``AdaptResult(params, losses)`` with the support loss before each step and
    after the last one, shape ``(steps + 1,)``; with ``observe``, the pair
    ``(AdaptResult, observations)`` where every leaf of ``observations`` has
    a leading axis of size ``steps``.
  """
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"steps must be a non-negative int; got {steps!r}.")
  check_remat(remat)
  check_segment(second_order_steps, "second_order_steps")
  check_segment(truncation, "truncation")
  leaves, treedef = jax.tree.flatten(params)
  if mask is None:
    mask = [True] * len(leaves)
  idx = [i for i, m in enumerate(mask) if m]
  view = (lambda p, i: p) if step_params is None else step_params

  # The adapted sub-tree keeps the parameters' structure, with None in place of
  # the frozen leaves, so optimizers see the familiar structure.
  def merge(sub: Params) -> Params:
    full = list(leaves)
    for i, s in zip(idx, jax.tree.leaves(sub)):
      full[i] = s
    return jax.tree.unflatten(treedef, full)

  def loss_at(i):
    def sub_loss(sub):
      loss, _ = call_loss(loss_fn, view(merge(sub), i), x, y)
      return loss
    return sub_loss

  opt = optax.with_extra_args_support(opt)
  sub0 = jax.tree.unflatten(treedef, [l if m else None for l, m in zip(leaves, mask)])
  state0 = opt.init(sub0)

  def make_step(stop: bool):
    def step(carry):
      i, sub, state = carry
      if truncation is not None:  # a new segment starts from constants
        cut = (i > 0) & (i % truncation == 0)
        sub, state = tree_where(cut, jax.lax.stop_gradient((sub, state)), (sub, state))
      sub_loss = loss_at(i)
      loss, grads = jax.value_and_grad(sub_loss)(sub)
      if stop:
        grads = jax.lax.stop_gradient(grads)
      updates, state = opt.update(
          grads, state, sub, value=loss, grad=grads, value_fn=sub_loss,
          inputs=x, targets=y, full_params=lambda s: view(merge(s), i))
      sub = optax.apply_updates(sub, updates)
      out = loss if observe is None else (loss, observe(view(merge(sub), i)))
      return (i + 1, sub, state), out
    return step

  # The first ``steps - second_order_steps`` steps are first order.
  head = 0 if second_order_steps is None or first_order else max(0, steps - second_order_steps)
  carry, parts = (jnp.zeros((), jnp.int32), sub0, state0), []
  segments = [(n, stop) for n, stop in ((head, True), (steps - head, first_order)) if n]
  for length, stop in segments or [(0, first_order)]:
    # A single step is unrolled (no while loop: faster on CPU, same compile time).
    carry, part = checkpointed_scan(make_step(stop), carry, length, remat=remat,
                                    unroll=length <= 1)
    parts.append(part)
  outs = parts[0] if len(parts) == 1 else jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
  losses, observed = outs if observe is not None else (outs, None)
  sub, last = carry[1], max(steps - 1, 0)
  losses = jnp.concatenate([losses, loss_at(last)(sub)[None].astype(losses.dtype)])
  result = AdaptResult(view(merge(sub), last), losses)
  return result if observe is None else (result, observed)


def check_segment(value: Any, name: str) -> Optional[int]:
  """Returns ``value`` if it is ``None`` or a positive int, else raises ``ValueError``.

  Checks ``second_order_steps`` and ``truncation`` (see ``inner_loop``).
  """
  if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
    raise ValueError(f"{name} must be None or a positive int; got {value!r}.")
  return value


def tree_where(pred: jax.Array, a: PyTree, b: PyTree) -> PyTree:
  """Elementwise ``jnp.where(pred, a, b)`` over two pytrees of one structure."""
  return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)
