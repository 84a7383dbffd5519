"""Adapters that turn flax models into ``(params, apply(params, x))``."""

from __future__ import annotations

import re
from typing import Any, Callable

import jax
from flax import nnx
import flax.linen as nn

Params = Any


def from_linen(module: nn.Module, key: jax.Array, example_x: jax.Array) -> tuple[Params, Callable]:
  """Initialises a flax linen module and returns ``(params, apply)``.

  Args:
    module: a ``flax.linen.Module`` without mutable collections.
    key: PRNG key for the initialisation.
    example_x: an input batch of the right shape (its values are unused).

  Returns:
    ``params`` (the variables dict) and the pure ``apply(params, x)``.
  """
  params = module.init(key, example_x)
  return params, module.apply


def from_nnx(model: nnx.Module) -> tuple[Params, Callable]:
  """Splits a flax NNX module into its parameters and a pure ``apply``.

  The returned ``apply(params, x)`` merges the module's graph definition with
  ``params`` and calls it, so ``jax.grad``/``vmap``/``jit`` see a pure function
  of the parameter pytree. Non-parameter state (e.g. RNG counters) is held
  fixed at its current value.

  Args:
    model: an ``nnx.Module``; it is not modified.

  Returns:
    ``(params, apply)`` where ``params`` is an ``nnx.State`` of the
    ``nnx.Param`` variables.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def apply(p, x):
    return nnx.merge(graphdef, p, rest)(x)

  return params, apply


def path_mask(params: Params, pattern: str) -> Any:
  """A mask selecting the leaves whose path matches a regular expression.

  Paths are joined with ``/``, e.g. ``params/head/kernel`` for a linen model.
  Use it for ANIL: ``jmeta.anil(loss, adapt=lambda p: jmeta.path_mask(p, "head"))``.

  Args:
    params: a parameter pytree.
    pattern: a regular expression searched in each leaf's path.

  Returns:
    A pytree of bools with the structure of ``params``.
  """
  rx = re.compile(pattern)

  def name(k):
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        return str(getattr(k, attr))
    return str(k)

  return jax.tree_util.tree_map_with_path(
      lambda path, _: bool(rx.search("/".join(name(k) for k in path))), params)
