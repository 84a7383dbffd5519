"""Implicit differentiation of solutions of ``optimality_fn(x, *args) = 0`` (``custom_root``)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

from jmeta._base import PyTree
from jmeta._cg import SolveInfo, cg, check_solver_config, normal_cg

Solve = Callable[..., tuple[PyTree, SolveInfo]]
FAILURE_POLICIES = ("nan", "ignore")


def make_solve(solve: Union[str, Solve], maxiter: int,
               tol: float) -> Callable[[Any, PyTree], tuple[PyTree, SolveInfo]]:
  """Returns ``solve(matvec, b) -> (x, SolveInfo)`` from a name or a callable.

  Args:
    solve: ``"cg"`` (symmetric positive-definite systems), ``"normal_cg"`` (any
      invertible system) or a callable ``solve(matvec, b, *, maxiter, tol)``
      returning ``(x, SolveInfo)``.
    maxiter: iterations of the solver.
    tol: tolerance on the relative residual.
  """
  check_solver_config(maxiter, tol)
  if isinstance(solve, str):
    if solve not in ("cg", "normal_cg"):
      raise ValueError(f"solve must be 'cg', 'normal_cg' or a callable; got {solve!r}.")
    solve = cg if solve == "cg" else normal_cg
  elif not callable(solve):
    raise TypeError(f"solve must be 'cg', 'normal_cg' or a callable; got {type(solve).__name__}.")
  return functools.partial(solve, maxiter=maxiter, tol=tol)


def check_failure_policy(on_failure: Any, name: str = "on_failure") -> str:
  if on_failure not in FAILURE_POLICIES:
    raise ValueError(f"{name} must be one of {FAILURE_POLICIES}; got {on_failure!r}.")
  return on_failure


def nan_unless(ok: jax.Array, tree: PyTree) -> PyTree:
  """Replaces every inexact leaf of ``tree`` by NaN where ``ok`` is False."""
  def f(v):
    if not jnp.issubdtype(jnp.result_type(v), jnp.inexact):
      return v
    return jnp.where(ok, v, jnp.asarray(jnp.nan, jnp.result_type(v)))
  return jax.tree.map(f, tree)


def root_vjp(
    optimality_fn: Callable[..., PyTree],
    sol: PyTree,
    args: tuple,
    cotangent: PyTree,
    *,
    solve: Callable[[Any, PyTree], tuple[PyTree, SolveInfo]],
) -> tuple[tuple, SolveInfo]:
  """Vector-Jacobian product of the root ``x*(args)`` of ``optimality_fn(x, *args) = 0``.

  By the implicit function theorem, with ``A = dF/dx`` and ``B = dF/dargs`` at
  the root, ``dx*/dargs = -A^{-1} B``; so for a cotangent ``v`` of the root,
  ``v^T dx*/dargs = -(B^T u)`` where ``A^T u = v``. The system is solved by
  ``solve`` with ``A^T``'s products from one ``jax.vjp`` (no matrix is formed).

  Args:
    optimality_fn: ``F(x, *args) -> pytree like x``, zero at the solution.
    sol: the solution ``x*``.
    args: the tuple of arguments to differentiate.
    cotangent: ``v``, a pytree like ``sol``.
    solve: ``solve(matvec, b) -> (u, SolveInfo)`` (see ``make_solve``).

  Returns:
    ``(cotangents of args, SolveInfo)``; the caller decides what a failed solve
    means (``custom_root`` turns it into NaN by default).
  """
  _, vjp_x = jax.vjp(lambda x: optimality_fn(x, *args), sol)
  u, info = solve(lambda w: vjp_x(w)[0], cotangent)
  _, vjp_args = jax.vjp(lambda *a: optimality_fn(sol, *a), *args)
  cot_args = vjp_args(jax.tree.map(jnp.negative, u))
  return cot_args, info


def custom_root(
    optimality_fn: Callable[..., PyTree],
    *,
    solve: Union[str, Solve] = "cg",
    maxiter: int = 20,
    tol: float = 1e-6,
    has_aux: bool = False,
    on_failure: str = "nan",
) -> Callable[[Callable], Callable]:
  """Decorator that differentiates a solver implicitly through its optimality condition.

  ``solver(init, *args)`` returns ``x*`` with ``optimality_fn(x*, *args) = 0``
  (e.g. the gradient of an inner objective). The decorated solver's forward
  pass runs ``solver`` as is (any loop, never differentiated, so memory does not
  grow with its iterations); its reverse-mode derivative w.r.t. ``args`` solves
  ``A^T u = v`` with ``A = dF/dx`` by ``solve`` (conjugate gradient on
  Jacobian-vector products by default) and returns ``-(dF/dargs)^T u``.

  A solve whose relative residual exceeds ``tol`` after ``maxiter`` iterations
  cannot raise inside ``jit``; with ``on_failure="nan"`` (default) the
  cotangents of ``args`` are then NaN, which ``jmeta.make_meta_step``'s
  non-finite guard skips (or raises on, with ``on_nonfinite="raise"``). Use
  ``root_vjp`` directly to get the residual itself.

  Args:
    optimality_fn: ``F(x, *args) -> pytree like x``. With ``solve="cg"``,
      ``dF/dx`` must be symmetric positive definite (true when ``F`` is the
      gradient of a strongly convex objective); use ``"normal_cg"`` otherwise.
    solve: ``"cg"``, ``"normal_cg"`` or ``solve(matvec, b, *, maxiter, tol) ->
      (x, jmeta.SolveInfo)``.
    maxiter: iterations of the linear solve.
    tol: tolerance on its relative residual.
    has_aux: ``solver`` returns ``(x*, aux)``; ``aux`` is not differentiated.
    on_failure: ``"nan"`` or ``"ignore"`` (use the unconverged solution).

  Returns:
    A decorator: ``custom_root(F)(solver)(init, *args)``. Gradients flow to
    ``args`` only (not ``init``); everything the solution depends on must be
    in ``args`` (integer leaves get zero cotangents). Reverse mode only.

  Examples:
    >>> def F(w, lam, X, y):  # ridge regression: gradient of the objective
    ...   return X.T @ (X @ w - y) + lam * w
    >>> @jmeta.custom_root(F)
    ... def ridge(init, lam, X, y):
    ...   return jnp.linalg.solve(X.T @ X + lam * jnp.eye(X.shape[1]), X.T @ y)
    >>> jax.grad(lambda lam: ridge(None, lam, X, y).sum())(1.0)

  References:
    Blondel et al., "Efficient and Modular Implicit Differentiation", NeurIPS
    2022 (jaxopt's ``custom_root``); Rajeswaran, Finn, Kakade and Levine,
    "Meta-Learning with Implicit Gradients", NeurIPS 2019.
  """
  if not callable(optimality_fn):
    raise TypeError(f"optimality_fn must be callable; got {type(optimality_fn).__name__}.")
  solve_fn = make_solve(solve, maxiter, tol)
  check_failure_policy(on_failure)

  def decorator(solver: Callable) -> Callable:
    if not callable(solver):
      raise TypeError(f"custom_root decorates a solver function; got {type(solver).__name__}.")

    @jax.custom_vjp
    def solved(init, *args):
      return solver(init, *args)

    def fwd(init, *args):
      out = solver(init, *args)
      sol = out[0] if has_aux else out
      return out, (init, sol, args)

    def bwd(res, cot):
      init, sol, args = res
      cot_sol = cot[0] if has_aux else cot
      cot_args, info = root_vjp(optimality_fn, sol, args, cot_sol, solve=solve_fn)
      if on_failure == "nan":
        cot_args = nan_unless(info.converged, cot_args)
      cot_init = jax.tree.map(_zero_cotangent, init)
      return (cot_init,) + tuple(cot_args)

    solved.defvjp(fwd, bwd)
    return functools.wraps(solver)(solved)

  return decorator


def _zero_cotangent(v):
  v = jnp.asarray(v)
  if jnp.issubdtype(v.dtype, jnp.inexact):
    return jnp.zeros_like(v)
  return jnp.zeros(v.shape, jax.dtypes.float0)
