"""Newton-type inner steps as optax transformations: Newton-CG and Gauss-Newton-CG."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jmeta._cg import cg, check_solver_config
from jmeta._implicit import check_failure_policy, nan_unless

OutputLoss = Callable[[jax.Array, jax.Array], jax.Array]


class NewtonState(NamedTuple):
  """State of a Newton-type transformation: how its last linear solve went.

  Attributes:
    cg_residual: relative residual of the last CG solve.
    cg_iterations: CG iterations of the last solve (int32).
  """

  cg_residual: jax.Array
  cg_iterations: jax.Array


def _mse(out, y):
  if out.shape != y.shape:
    raise ValueError(f"gauss_newton 'mse': outputs have shape {out.shape} but targets {y.shape}.")
  return jnp.mean((out - y) ** 2)


def _cross_entropy(out, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y))


def _binary_cross_entropy(out, y):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(out.reshape(y.shape), y.astype(out.dtype)))


OUTPUT_LOSSES = {"mse": _mse, "cross_entropy": _cross_entropy,
                 "binary_cross_entropy": _binary_cross_entropy}


def _check_common(learning_rate, damping, cg_steps, cg_tol, on_cg_failure):
  if (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float))
      or not learning_rate > 0):
    raise ValueError(f"learning_rate must be a positive float; got {learning_rate!r}.")
  if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not damping >= 0:
    raise ValueError(f"damping must be a non-negative float; got {damping!r}.")
  check_solver_config(cg_steps, cg_tol)
  check_failure_policy(on_cg_failure, "on_cg_failure")


def _preconditioned(name, make_matvec, learning_rate, damping, cg_steps, cg_tol, on_cg_failure):
  """The shared transformation: ``-lr (C + damping I)^{-1} g`` with ``C v`` from ``make_matvec``."""

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    dtype = jnp.result_type(*leaves) if leaves else jnp.float32
    return NewtonState(jnp.zeros((), dtype), jnp.zeros((), jnp.int32))

  def solve(matvec, b):
    return cg(matvec, b, maxiter=cg_steps, tol=cg_tol)

  def update_fn(updates, state, params=None, **extra):
    if params is None:
      raise ValueError(f"{name} needs params in update(updates, state, params, ...).")
    curvature = make_matvec(params, extra)

    def matvec(v):
      return jax.tree.map(lambda c, u: c + damping * u, curvature(v), v)

    # custom_linear_solve differentiates the solution implicitly (the adjoint
    # system is solved by CG too), so MAML differentiates through the step
    # without unrolling CG.
    direction, info = jax.lax.custom_linear_solve(matvec, updates, solve, symmetric=True,
                                                  has_aux=True)
    new_updates = jax.tree.map(lambda d: -learning_rate * d, direction)
    if on_cg_failure == "nan":
      new_updates = nan_unless(info.converged, new_updates)
    new_state = NewtonState(info.residual.astype(state.cg_residual.dtype),
                            info.iterations.astype(jnp.int32))
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def newton(
    learning_rate: float = 1.0,
    *,
    damping: float = 0.0,
    cg_steps: int = 20,
    cg_tol: float = 1e-6,
    on_cg_failure: str = "nan",
) -> optax.GradientTransformationExtraArgs:
  """A damped Newton step, ``-lr (H + damping I)^{-1} g``, by CG on Hessian-vector products.

  ``H v`` is the VJP of ``jax.grad(value_fn)`` (reverse over reverse, set up
  once per step, so that ops with a ``custom_vjp`` work too); the Hessian is
  never formed. The transformation needs the ``value_fn``
  keyword of ``update`` (``params -> scalar loss``), which ``jmeta.inner_loop``
  passes, so ``jmeta.maml(loss_fn, jmeta.newton(...), steps=1)`` differentiates
  through Newton steps (the solve is differentiated implicitly by
  ``jax.lax.custom_linear_solve``, not by unrolling CG).

  CG needs ``H + damping I`` positive definite: on non-convex losses (neural
  networks) use ``damping`` or ``gauss_newton``. The state holds the last
  solve's relative residual; if it exceeds ``cg_tol`` after ``cg_steps``
  iterations, ``on_cg_failure="nan"`` (default) makes the update NaN (the
  meta-step's non-finite guard then skips the meta-update), ``"ignore"`` takes
  the truncated (inexact) Newton step.

  Args:
    learning_rate: step size (1.0 is the full Newton step).
    damping: added to the Hessian's diagonal (Levenberg-Marquardt damping).
    cg_steps: maximum CG iterations.
    cg_tol: tolerance on the relative residual.
    on_cg_failure: ``"nan"`` or ``"ignore"``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update(grads, state,
    params, *, value_fn)`` returns the Newton step; state ``NewtonState``.

  Examples:
    >>> learner = jmeta.maml(loss_fn, jmeta.newton(0.5, damping=1.0), steps=1)

  References:
    Nocedal and Wright, "Numerical Optimization", 2nd ed., 2006, chapter 7
    (Newton-CG); Pearlmutter, "Fast Exact Multiplication by the Hessian",
    Neural Computation 6(1), 1994.
  """
  _check_common(learning_rate, damping, cg_steps, cg_tol, on_cg_failure)

  def make_matvec(params, extra):
    value_fn = extra.get("value_fn")
    if value_fn is None:
      raise ValueError("newton needs the value_fn keyword in update (params -> scalar"
                       " loss); jmeta.inner_loop passes it.")
    # Reverse over reverse: H is symmetric, so the VJP of the gradient is H v.
    # (Not jax.linearize, forward mode, which custom_vjp ops such as the CPU's
    # default convolution, conv_impl="xla_vjp", do not support.)
    _, hvp = jax.vjp(jax.grad(value_fn), params)
    return lambda v: hvp(v)[0]

  return _preconditioned("newton", make_matvec, learning_rate, damping, cg_steps, cg_tol,
                         on_cg_failure)


def gauss_newton(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    output_loss: Union[str, OutputLoss] = "mse",
    learning_rate: float = 1.0,
    *,
    damping: float = 0.0,
    cg_steps: int = 20,
    cg_tol: float = 1e-6,
    on_cg_failure: str = "nan",
) -> optax.GradientTransformationExtraArgs:
  """A damped Gauss-Newton step, ``-lr (J^T H_out J + damping I)^{-1} g``, by CG.

  ``J`` is the Jacobian of the outputs ``apply_fn(params, x)`` and ``H_out``
  the Hessian of ``output_loss(outputs, y)`` in the outputs; products with
  ``J^T`` and ``J`` are a VJP of the network and the VJP of that VJP (reverse
  mode only, so that ops with a ``custom_vjp`` work too), so no matrix is
  formed. The Gauss-Newton matrix is
  positive semi-definite for convex output losses, so CG is safe on neural
  networks (with some ``damping``). It equals the Hessian for a linear model
  with squared loss.

  The inner loss must be ``output_loss(apply_fn(params, x), y)`` (e.g.
  ``jmeta.mse_loss(apply_fn)`` with ``"mse"``); ``update`` needs the
  ``inputs`` and ``targets`` keywords (and ``full_params`` when only a subset
  of the parameters is adapted), which ``jmeta.inner_loop`` passes.

  Args:
    apply_fn: the model, ``apply_fn(params, x) -> outputs``.
    output_loss: ``"mse"``, ``"cross_entropy"`` (integer labels),
      ``"binary_cross_entropy"`` or a callable ``(outputs, y) -> scalar``.
    learning_rate: step size.
    damping: added to the Gauss-Newton matrix's diagonal.
    cg_steps: maximum CG iterations.
    cg_tol: tolerance on the relative residual.
    on_cg_failure: ``"nan"`` or ``"ignore"`` (see ``newton``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; state ``NewtonState``.

  References:
    Schraudolph, "Fast Curvature Matrix-Vector Products for Second-Order
    Gradient Descent", Neural Computation 14(7), 2002; Martens, "Deep Learning
    via Hessian-free Optimization", ICML 2010.
  """
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable; got {type(apply_fn).__name__}.")
  if isinstance(output_loss, str):
    if output_loss not in OUTPUT_LOSSES:
      raise ValueError(f"output_loss must be one of {sorted(OUTPUT_LOSSES)} or a callable;"
                       f" got {output_loss!r}.")
    output_loss = OUTPUT_LOSSES[output_loss]
  elif not callable(output_loss):
    raise TypeError("output_loss must be a string or a callable;"
                    f" got {type(output_loss).__name__}.")
  _check_common(learning_rate, damping, cg_steps, cg_tol, on_cg_failure)

  def make_matvec(params, extra):
    x, y = extra.get("inputs"), extra.get("targets")
    if x is None or y is None:
      raise ValueError("gauss_newton needs the inputs and targets keywords in update;"
                       " jmeta.inner_loop passes them.")
    full: Optional[Callable] = extra.get("full_params")
    model = (lambda p: apply_fn(full(p), x)) if full is not None else (lambda p: apply_fn(p, x))
    # Reverse mode only (custom_vjp ops have no JVP): J^T u is the model's VJP,
    # J v the VJP of that linear map, H_out v the VJP of the output gradient.
    out, vjp = jax.vjp(model, params)
    _, jvp = jax.vjp(lambda u: vjp(u)[0], jnp.zeros_like(out))
    _, h_out = jax.vjp(jax.grad(lambda o: output_loss(o, y)), out)
    return lambda v: vjp(h_out(jvp(v)[0])[0])[0]

  return _preconditioned("gauss_newton", make_matvec, learning_rate, damping, cg_steps,
                         cg_tol, on_cg_failure)
