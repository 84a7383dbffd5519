"""Matrix-free linear solves on pytrees: conjugate gradient and its normal-equation form."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jmeta._base import PyTree

MatVec = Callable[[PyTree], PyTree]


class SolveInfo(NamedTuple):
  """How a linear solve went.

  Attributes:
    residual: relative residual ``||b - A x|| / ||b||`` (0 when ``b = 0``),
      float scalar.
    iterations: number of iterations run, int32 scalar.
    converged: ``residual <= tol`` and no direction of non-positive curvature
      was met (CG assumes a positive-definite operator; on an indefinite one
      its answer is not trusted), bool scalar.
  """

  residual: jax.Array
  iterations: jax.Array
  converged: jax.Array


def _vdot(a: PyTree, b: PyTree) -> jax.Array:
  parts = [jnp.vdot(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  return sum(parts[1:], parts[0]) if parts else jnp.zeros(())


def _axpy(alpha: jax.Array, x: PyTree, y: PyTree) -> PyTree:
  return jax.tree.map(lambda u, v: v + alpha.astype(u.dtype) * u, x, y)


def check_solver_config(maxiter: Any, tol: Any) -> None:
  """Validates CG settings before tracing."""
  if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
    raise ValueError(f"cg_steps (maxiter) must be a positive int; got {maxiter!r}.")
  if not isinstance(tol, (int, float)) or not tol >= 0:
    raise ValueError(f"cg_tol (tol) must be a non-negative float; got {tol!r}.")


def cg(matvec: MatVec, b: PyTree, *, maxiter: int = 10, tol: float = 1e-5,
       x0: PyTree = None) -> tuple[PyTree, SolveInfo]:
  """Solves ``A x = b`` for symmetric positive-definite ``A`` by conjugate gradient.

  ``A`` is only touched through ``matvec`` (e.g. a Hessian-vector product), so
  no matrix is ever formed. The loop stops after ``maxiter`` iterations or when
  the relative residual ``||r|| / ||b||`` falls to ``tol``; the residual is the
  recursively updated one (equal to ``b - A x`` in exact arithmetic). It is a
  ``lax.while_loop``: differentiate the *solution* implicitly (e.g. through
  ``jax.lax.custom_linear_solve`` or ``jmeta.custom_root``), not the loop.

  Args:
    matvec: ``v -> A v`` on pytrees shaped like ``b`` (linear, symmetric, PD).
    b: the right-hand side, a pytree of float arrays.
    maxiter: maximum number of iterations (a Python int >= 1).
    tol: tolerance on the relative residual.
    x0: initial guess (default zeros).

  Returns:
    ``(x, SolveInfo(residual, iterations, converged))``. Nothing is raised on
    non-convergence (it cannot be, under ``jit``): check ``converged``.

  References:
    Hestenes and Stiefel, "Methods of Conjugate Gradients for Solving Linear
    Systems", J. Res. NBS 49(6), 1952.
  """
  check_solver_config(maxiter, tol)
  x0 = jax.tree.map(jnp.zeros_like, b) if x0 is None else x0
  bnorm2 = _vdot(b, b).real
  r0 = jax.tree.map(jnp.subtract, b, matvec(x0))
  rs0 = _vdot(r0, r0).real
  # A zero right-hand side is solved by x = 0 at once.
  thresh = (tol ** 2) * bnorm2

  def cond(carry):
    _, _, _, rs, k, _ = carry
    return (k < maxiter) & (rs > thresh)

  def body(carry):
    x, r, p, rs, k, positive = carry
    ap = matvec(p)
    pap = _vdot(p, ap).real
    positive = positive & (pap > 0)
    alpha = rs / jnp.where(pap == 0, 1, pap)
    x = _axpy(alpha, p, x)
    r = _axpy(-alpha, ap, r)
    rs_new = _vdot(r, r).real
    beta = rs_new / jnp.where(rs == 0, 1, rs)
    p = _axpy(beta, p, r)
    return x, r, p, rs_new, k + 1, positive

  init = (x0, r0, r0, rs0, jnp.zeros((), jnp.int32), jnp.ones((), bool))
  x, _, _, rs, k, positive = jax.lax.while_loop(cond, body, init)
  residual = jnp.sqrt(rs / jnp.where(bnorm2 == 0, 1, bnorm2))
  return x, SolveInfo(residual, k, (residual <= tol) & positive)


def normal_cg(matvec: MatVec, b: PyTree, *, maxiter: int = 10, tol: float = 1e-5,
              x0: PyTree = None) -> tuple[PyTree, SolveInfo]:
  """Solves ``A x = b`` for any invertible (non-symmetric) ``A`` by CG on ``A^T A x = A^T b``.

  ``A^T`` is obtained from ``matvec`` by ``jax.linear_transpose``. The reported
  residual is that of the original system, ``||b - A x|| / ||b||``. Converges
  more slowly than ``cg`` (the condition number is squared).

  Args:
    matvec: ``v -> A v`` (linear).
    b: right-hand side.
    maxiter: maximum number of CG iterations.
    tol: tolerance on the relative residual of the normal equations (the
      stopping rule); the returned ``converged`` uses the original residual.
    x0: initial guess.

  Returns:
    ``(x, SolveInfo)`` as for ``cg``.
  """
  check_solver_config(maxiter, tol)
  transpose = jax.linear_transpose(matvec, b)
  rmatvec = lambda v: transpose(v)[0]
  x, info = cg(lambda v: rmatvec(matvec(v)), rmatvec(b), maxiter=maxiter, tol=tol, x0=x0)
  r = jax.tree.map(jnp.subtract, b, matvec(x))
  bnorm2 = _vdot(b, b).real
  residual = jnp.sqrt(_vdot(r, r).real / jnp.where(bnorm2 == 0, 1, bnorm2))
  return x, SolveInfo(residual, info.iterations, residual <= tol)
