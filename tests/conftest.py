"""Strict JAX settings for the whole suite (as equinox's tests do)."""

import os

from jmeta import models as _ops  # the public conv ops and the XLA workaround

# The suite checks numerics in float64. XLA:CPU in jaxlib >= 0.10.2
# miscompiles some float64 conv/batch-norm gradients unless its algebraic
# simplifier is off (jmeta.models.XLA_F64_WORKAROUND; README "Known
# issues"), and jaxlib 0.6.1 (the oldest CI leg) gets the float64 second- and
# third-order derivatives of the matmul conv path wrong without it too
# (tests/test_conv.py::test_conv_second_and_third_order_match_xla and
# ::test_matmul_impl_supports_forward_mode, measured): the suite sets the flag on
# every jaxlib. It must be set before JAX starts its backend.
_flags = os.environ.get("XLA_FLAGS", "")
if _ops.XLA_F64_WORKAROUND not in _flags.split():
  os.environ["XLA_FLAGS"] = (_flags + " " + _ops.XLA_F64_WORKAROUND).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
