"""The inner loop: ``lax.scan`` of ``jax.grad`` steps with any optax optimizer."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, Params, PyTree
from jmeta._remat import Remat, check_remat, checkpointed_scan

LossFn = Callable[..., Any]
Mask = Any  # a pytree of bools shaped like the params, or a callable params -> such a pytree


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
    truncate: Optional[int] = None,
) -> AdaptResult:
  """Adapts ``params`` to ``(x, y)`` with ``steps`` steps of ``opt``.

  The loop is a ``lax.scan`` of static length, so compile time does not grow
  with ``steps``. It is differentiable end to end (second order through every
  step, including the optimizer's own state), unless ``first_order`` is set, in
  which case each inner gradient is wrapped in ``stop_gradient``.

  Optimizers that take extra arguments (``optax.GradientTransformationExtraArgs``,
  e.g. a Newton-type step) receive ``value``, ``grad`` and ``value_fn`` (the
  loss of the adapted sub-tree), ``inputs`` and ``targets`` (``x``, ``y``) and
  ``full_params`` (sub-tree -> all parameters, for ``jmeta.gauss_newton``).

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
    truncate: truncated back-propagation: only the last ``truncate`` steps
      carry second-order terms; the earlier inner gradients are wrapped in
      ``stop_gradient`` (first order, so their Jacobian is the identity and
      they keep almost nothing for the backward pass). ``None``: all steps.

  Returns:
    ``AdaptResult(params, losses)`` with the support loss before each step and
    after the last one, shape ``(steps + 1,)``.
  """
  if not isinstance(steps, int) or steps < 0:
    raise ValueError(f"steps must be a non-negative int; got {steps!r}.")
  check_remat(remat)
  check_truncate(truncate)
  leaves, treedef = jax.tree.flatten(params)
  if mask is None:
    mask = [True] * len(leaves)
  idx = [i for i, m in enumerate(mask) if m]

  # The adapted sub-tree keeps the parameters' structure, with None in place of
  # the frozen leaves, so optimizers see the familiar structure.
  def merge(sub: Params) -> Params:
    full = list(leaves)
    for i, s in zip(idx, jax.tree.leaves(sub)):
      full[i] = s
    return jax.tree.unflatten(treedef, full)

  def sub_loss(sub):
    loss, _ = call_loss(loss_fn, merge(sub), x, y)
    return loss

  opt = optax.with_extra_args_support(opt)
  sub0 = jax.tree.unflatten(treedef, [l if m else None for l, m in zip(leaves, mask)])
  state0 = opt.init(sub0)

  def make_step(stop: bool):
    def step(carry):
      sub, state = carry
      loss, grads = jax.value_and_grad(sub_loss)(sub)
      if stop:
        grads = jax.lax.stop_gradient(grads)
      updates, state = opt.update(
          grads, state, sub, value=loss, grad=grads, value_fn=sub_loss,
          inputs=x, targets=y, full_params=merge)
      sub = optax.apply_updates(sub, updates)
      return (sub, state), loss
    return step

  # The first ``steps - truncate`` steps are first order (truncated BPTT).
  head = 0 if truncate is None or first_order else max(0, steps - truncate)
  carry, parts = (sub0, state0), []
  segments = [(n, stop) for n, stop in ((head, True), (steps - head, first_order)) if n]
  for length, stop in segments or [(0, first_order)]:
    # A single step is unrolled (no while loop: faster on CPU, same compile time).
    carry, part = checkpointed_scan(make_step(stop), carry, length, remat=remat,
                                    unroll=length <= 1)
    parts.append(part)
  sub = carry[0]
  losses = parts[0] if len(parts) == 1 else jnp.concatenate(parts)
  final = sub_loss(sub)
  losses = jnp.concatenate([losses, final[None]])
  return AdaptResult(merge(sub), losses)


def check_truncate(truncate: Any) -> Optional[int]:
  """Returns ``truncate`` if it is ``None`` or a positive int, else raises."""
  if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, int)
                               or truncate < 1):
    raise ValueError(f"truncate must be None or a positive int; got {truncate!r}.")
  return truncate


def tree_where(pred: jax.Array, a: PyTree, b: PyTree) -> PyTree:
  """Elementwise ``jnp.where(pred, a, b)`` over two pytrees of one structure."""
  return jax.tree.map(lambda u, v: jnp.where(pred, u, v), a, b)
