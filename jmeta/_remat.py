"""Memory-flat scans: nested ``jax.checkpoint`` schedules for long inner loops.

A ``lax.scan`` differentiated in reverse mode keeps its residuals for every
step. Wrapping each step in ``jax.checkpoint`` shrinks them to one carry per
step, which still grows linearly with the number of steps. Nesting the scan
(a scan of checkpointed segments, each a scan of checkpointed steps) keeps
only one carry per segment plus one per step of the segment being
recomputed: ``O(sqrt(n))`` carries with two levels, ``O(log n)`` with
``log2(n)`` levels of two, for one and ``log2(n)`` extra forward passes
respectively.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

# The one type of the ``remat=`` option of ``jmeta.inner_loop`` and of every
# learner with a differentiated unroll; ``check_remat`` validates it.
Remat = Union[bool, str]
REMAT_POLICIES = (False, True, "none", "step", "sqrt", "log")


def check_remat(remat: Any, name: str = "remat") -> str:
  """Returns the canonical name of a remat policy, or raises ``ValueError``.

  ``False``/``"none"``: no rematerialisation (fastest, memory linear in
  steps); ``True``/``"step"``: ``jax.checkpoint`` each step (one carry per
  step); ``"sqrt"``: two nested levels (about ``2 sqrt(n)`` carries, one extra
  forward pass); ``"log"``: ``ceil(log2 n)`` nested levels of two (about
  ``2 log2(n)`` carries, ``log2(n)`` extra forward passes).
  """
  if remat is False or remat == "none":
    return "none"
  if remat is True or remat == "step":
    return "step"
  if isinstance(remat, str) and remat in ("sqrt", "log"):
    return remat
  raise ValueError(
      f"{name} must be False, True, 'none', 'step', 'sqrt' or 'log'; got {remat!r}.")


def _int_root(n: int, k: int) -> int:
  """The smallest integer ``b >= 1`` with ``b ** k >= n``."""
  b = max(1, int(round(n ** (1.0 / k))))
  while b ** k < n:
    b += 1
  while b > 1 and (b - 1) ** k >= n:
    b -= 1
  return b


def segment_sizes(length: int, policy: str) -> tuple[int, ...]:
  """The branching factor of each nesting level, outermost first.

  Their product is the padded length (``>= length``, steps beyond ``length``
  are skipped by a ``lax.cond``).

  Args:
    length: number of steps (``>= 1``).
    policy: a canonical policy name (see ``check_remat``).

  Returns:
    A tuple of ints; ``(length,)`` for ``"none"`` and ``"step"``.
  """
  if policy in ("none", "step") or length <= 1:
    return (length,)
  levels = 2 if policy == "sqrt" else max(1, math.ceil(math.log2(length)))
  sizes, remaining = [], length
  for level in range(levels, 0, -1):
    b = _int_root(remaining, level)
    sizes.append(b)
    remaining = -(-remaining // b)
  return tuple(s for s in sizes if s > 1) or (1,)


def checkpointed_scan(
    step: Callable[[Any], tuple[Any, jax.Array]],
    carry: Any,
    length: int,
    *,
    remat: Remat = False,
    unroll: bool = False,
) -> tuple[Any, jax.Array]:
  """``lax.scan(lambda c, _: step(c), carry, None, length)`` under a remat policy.

  Every policy computes the same numbers (values and gradients) as the plain
  scan; they differ in what reverse-mode differentiation keeps in memory.

  Args:
    step: ``step(carry) -> (carry, y)``; ``y`` a pytree of arrays (e.g. a loss).
    carry: the initial carry (a pytree of arrays).
    length: number of steps, a Python int ``>= 0``.
    remat: ``False``/``"none"``, ``True``/``"step"``, ``"sqrt"`` or ``"log"``
      (see ``check_remat``).
    unroll: unroll the scan (only for the non-nested policies).

  Returns:
    ``(carry, ys)``: every leaf of ``ys`` stacked along a new leading axis of
    size ``length``.

  References:
    Griewank, "Achieving logarithmic growth of temporal and spatial complexity
    in reverse automatic differentiation", Optimization Methods and Software,
    1992. Chen, Xu, Zhang and Guestrin, "Training Deep Nets with Sublinear
    Memory Cost", arXiv:1604.06174, 2016.
  """
  policy = check_remat(remat)
  if policy in ("none", "step") or length <= 1:
    body = jax.checkpoint(step, prevent_cse=False) if policy != "none" else step
    return jax.lax.scan(lambda c, _: body(c), carry, None, length=length, unroll=unroll)

  sizes = segment_sizes(length, policy)
  padded = math.prod(sizes)
  y_shapes = jax.eval_shape(step, carry)[1]

  def leaf(c, i):
    if padded == length:
      return step(c)
    skip = lambda c: (c, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), y_shapes))
    return jax.lax.cond(i < length, step, skip, c)

  def nest(level: int) -> Callable[[Any, jax.Array], tuple[Any, jax.Array]]:
    inner = leaf if level == len(sizes) - 1 else nest(level + 1)
    inner = jax.checkpoint(inner, prevent_cse=False)
    stride = math.prod(sizes[level + 1:])

    def run(c, start):
      starts = start + stride * jnp.arange(sizes[level], dtype=jnp.int32)
      c, ys = jax.lax.scan(inner, c, starts)
      return c, jax.tree.map(lambda y: y.reshape((-1,) + y.shape[2:]), ys)

    return run

  carry, ys = nest(0)(carry, jnp.zeros((), jnp.int32))
  return carry, jax.tree.map(lambda y: y[:length], ys)
