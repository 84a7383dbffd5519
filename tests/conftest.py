"""Strict JAX settings for the whole suite (as equinox's tests do)."""

import os

from jmeta.models import _ops

# The suite checks numerics in float64. XLA:CPU in jaxlib >= 0.10.2
# miscompiles some float64 conv/batch-norm gradients unless its algebraic
# simplifier is off (jmeta.models._ops.XLA_F64_WORKAROUND; README "Known
# issues"); the flag is added only for those jaxlib releases. It must be set
# before JAX starts its backend (importing jax does not start it).
os.environ["XLA_FLAGS"] = _ops.xla_flags_with_f64_workaround(os.environ.get("XLA_FLAGS", ""))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
