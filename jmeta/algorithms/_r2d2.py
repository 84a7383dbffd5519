"""R2-D2: a differentiable closed-form ridge-regression head."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmeta._base import MetaLearner
from jmeta.algorithms._embedding import EmbedFn, Head, embedding_based


def ridge_solve(z: jax.Array, y: jax.Array, lam: jax.Array) -> jax.Array:
  """Ridge-regression weights ``W = argmin ||z W - y||^2 + lam ||W||^2``.

  Solves the smaller of the two equivalent systems: the primal
  ``W = (z^T z + lam I_d)^{-1} z^T y`` when ``n >= d``, the Woodbury (dual) form
  ``W = z^T (z z^T + lam I_n)^{-1} y`` when ``n < d`` (few-shot: ``n = ways *
  shots`` examples, ``d`` features), both by ``jnp.linalg.solve`` and so
  differentiable in ``z``, ``y`` and ``lam``.

  Args:
    z: features, shape ``(n, d)``.
    y: targets, shape ``(n, k)``.
    lam: the ridge penalty, a positive scalar.

  Returns:
    ``W``, shape ``(d, k)``.
  """
  n, d = z.shape
  lam = jnp.asarray(lam, z.dtype)
  if n < d:
    gram = z @ z.T + lam * jnp.eye(n, dtype=z.dtype)
    return z.T @ jnp.linalg.solve(gram, y)
  gram = z.T @ z + lam * jnp.eye(d, dtype=z.dtype)
  return jnp.linalg.solve(gram, z.T @ y)


def r2d2_head(init_log_lambda: float = 0.0, init_scale: float = 1.0,
              init_bias: float = 0.0) -> Head:
  """The R2-D2 head: ``logits = scale * zq @ W + bias`` with ``W`` the ridge solution."""

  def init(key):
    del key
    dtype = jnp.result_type(float)  # float64 under jax_enable_x64, else float32
    return {"log_lambda": jnp.array(init_log_lambda, dtype),
            "scale": jnp.array(init_scale, dtype),
            "bias": jnp.array(init_bias, dtype)}

  def fit(hp, zs, ys):
    return ridge_solve(zs, ys, jnp.exp(hp["log_lambda"]))

  def logits(hp, w, zq):
    dtype = zq.dtype
    return hp["scale"].astype(dtype) * (zq @ w) + hp["bias"].astype(dtype)

  return Head(init=init, fit=fit, logits=logits)


def r2d2(embed: EmbedFn, *, ways: int, init_log_lambda: float = 0.0, init_scale: float = 1.0,
         init_bias: float = 0.0) -> MetaLearner:
  """R2-D2: ridge regression to one-hot labels as a differentiable head.

  For each task the support embeddings ``Z`` (``n = ways * shots`` rows) are
  regressed onto one-hot labels ``Y`` in closed form, ``W = (Z^T Z + lambda
  I)^{-1} Z^T Y``, computed in the Woodbury form ``Z^T (Z Z^T + lambda I)^{-1}
  Y`` when ``n`` is smaller than the feature dimension (see
  :func:`ridge_solve`). Query logits are ``alpha * Z_q W + beta``. The
  embedding, ``log lambda``, ``alpha`` and ``beta`` are meta-learned by
  back-propagating the query cross-entropy through the solve.

  Args:
    embed: ``embed(params, x) -> (n, d)``.
    ways: classes per task.
    init_log_lambda: initial ``log lambda`` (0: lambda = 1).
    init_scale: initial logit scale ``alpha``.
    init_bias: initial logit bias ``beta``.

  Returns:
    A ``MetaLearner`` with meta-parameters ``{"embed": params, "head":
    {"log_lambda", "scale", "bias"}}`` (scalars of the default float dtype).

  References:
    Bertinetto, Henriques, Torr and Vedaldi, "Meta-learning with
    differentiable closed-form solvers", ICLR 2019.
  """
  return embedding_based(embed, r2d2_head(init_log_lambda, init_scale, init_bias), ways=ways)
