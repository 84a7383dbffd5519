"""Strict JAX settings for the whole suite (as equinox's tests do)."""

import os

# The suite checks numerics in float64. XLA:CPU in jaxlib 0.10.2 miscompiles
# some float64 conv/batch-norm gradients unless its algebraic simplifier is off
# (jmeta.models._ops.XLA_F64_WORKAROUND; README "Known issues"). It must be set
# before JAX starts its backend.
_flags = os.environ.get("XLA_FLAGS", "")
if "--xla_disable_hlo_passes=algsimp" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_disable_hlo_passes=algsimp").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
