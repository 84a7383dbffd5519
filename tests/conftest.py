"""Strict JAX settings for the whole suite (as equinox's tests do)."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
