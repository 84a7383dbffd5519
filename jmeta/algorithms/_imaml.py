"""iMAML: MAML with implicit meta-gradients of a proximally regularised inner problem."""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner, Params, Task
from jmeta._implicit import check_failure_policy, custom_root, make_solve, nan_unless, root_vjp
from jmeta._inner import LossFn, call_loss, inner_loop
from jmeta._losses import ApplyFn
from jmeta.algorithms._gradient_based import (adapted_predict, check_apply_fn, check_optimizer,
                                              check_steps, query_metrics)


def _sq_dist(a: Params, b: Params) -> jax.Array:
  parts = [jnp.sum((u - v) ** 2) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  return sum(parts[1:], parts[0])


def imaml(
    loss_fn: LossFn,
    inner_opt: Optional[optax.GradientTransformation] = None,
    *,
    steps: int = 10,
    lam: float = 1.0,
    cg_steps: int = 5,
    cg_tol: float = 1e-2,
    on_cg_failure: str = "nan",
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Implicit MAML: meta-gradients by implicit differentiation of a proximal inner problem.

  Each task adapts the initialisation ``theta`` by solving
  ``phi* = argmin_phi L_support(phi) + lam/2 ||phi - theta||^2`` approximately
  with ``steps`` steps of ``inner_opt`` started at ``theta``. The inner loop is
  never differentiated (its memory does not grow with ``steps``); the
  meta-gradient of the query loss ``L_query(phi*)`` is the implicit one,
  ``(I + H/lam)^{-1} grad L_query(phi*)`` with ``H`` the support-loss Hessian at
  ``phi*``, computed by ``cg_steps`` iterations of conjugate gradient on
  Hessian-vector products (``jmeta.custom_root`` on the optimality condition
  ``grad L_support(phi) + lam (phi - theta) = 0``).

  It is exact when the inner problem is solved exactly; it needs
  ``I + H/lam`` positive definite (``lam`` larger than minus the smallest
  Hessian eigenvalue; CG flags negative curvature as a failure). For example
  the sinusoid 1-40-40-1 ReLU MLP at initialisation has Hessian eigenvalues
  from about -4.7 to 315: ``lam=1`` makes the solves fail (every meta-step
  skipped), ``lam=10`` with ``cg_steps=20`` converges.

  ``task_grad`` reports ``cg_residual`` (relative residual of the linear
  solve) and ``cg_iterations`` in its metrics. If the
  residual exceeds ``cg_tol``, with ``on_cg_failure="nan"`` (default) the task's
  meta-gradient is NaN, so the meta-step's non-finite guard skips the update
  (``metrics["finite"] == 0``; ``on_nonfinite="raise"`` raises); with
  ``"ignore"`` the approximate gradient is used and only reported.
  ``jax.grad(task_loss)`` gives the same implicit gradient (without the
  residual in its metrics).

  ``adapt(...).losses`` holds the inner objective (support loss plus the
  proximal term), so ``support_loss`` in the metrics includes the proximal term.

  Args:
    loss_fn: ``loss_fn(params, x, y) -> loss`` or ``(loss, aux_dict)``.
    inner_opt: optax transformation of the inner loop (default
      ``optax.sgd(0.01)``); a Newton step (``jmeta.newton``) solves quadratic
      inner problems in one step.
    steps: inner steps (the inner problem should be solved well: the implicit
      gradient assumes ``phi*`` is its minimiser).
    lam: strength of the proximal regulariser (> 0).
    cg_steps: maximum conjugate-gradient iterations of the meta-gradient.
    cg_tol: tolerance on the CG relative residual.
    on_cg_failure: ``"nan"`` or ``"ignore"`` (see above).
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  Returns:
    A ``MetaLearner``; its meta-parameters are the model parameters.

  Examples:
    >>> learner = jmeta.imaml(loss_fn, optax.sgd(0.05), steps=20, lam=1.0)
    >>> step = jmeta.make_meta_step(learner, optax.adam(1e-3))

  References:
    Rajeswaran, Finn, Kakade and Levine, "Meta-Learning with Implicit
    Gradients", NeurIPS 2019.
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}.")
  opt = check_optimizer(optax.sgd(0.01) if inner_opt is None else inner_opt)
  default_steps = check_steps(steps)
  if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0:
    raise ValueError(f"lam (the proximal strength) must be a positive float; got {lam!r}.")
  solve = make_solve("cg", cg_steps, cg_tol)
  check_failure_policy(on_cg_failure, "on_cg_failure")
  lam = float(lam)
  apply_fn = check_apply_fn(apply_fn, loss_fn)

  def inner_objective(theta):
    def prox_loss(phi, x, y):
      loss, aux = call_loss(loss_fn, phi, x, y)
      return loss + 0.5 * lam * _sq_dist(phi, theta), aux
    return prox_loss

  def optimality_fn(phi, theta, x, y):
    g = jax.grad(lambda p: call_loss(loss_fn, p, x, y)[0])(phi)
    return jax.tree.map(lambda gi, p, t: gi + lam * (p - t), g, phi, theta)

  def solver(n):
    def run(init, theta, x, y):
      theta = jax.lax.stop_gradient(theta)
      res = inner_loop(inner_objective(theta), init, x, y, opt, n, first_order=True)
      return res.params, res.losses
    return run

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    n = default_steps if steps is None else check_steps(steps)
    theta = jax.lax.stop_gradient(meta_params)
    return AdaptResult(*solver(n)(theta, theta, x, y))

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    del step
    n = default_steps if steps is None else check_steps(steps)
    implicit = custom_root(optimality_fn, maxiter=cg_steps, tol=cg_tol, has_aux=True,
                           on_failure=on_cg_failure)(solver(n))
    phi, losses = implicit(jax.lax.stop_gradient(meta_params), meta_params,
                           task.support_x, task.support_y)
    return query_metrics(loss_fn, meta_params, phi, task, AdaptResult(phi, losses))

  def task_grad(meta_params, task: Task, step=0):
    del step
    adapted = adapt(meta_params, task.support_x, task.support_y)
    phi = adapted.params

    def outer(p):
      return query_metrics(loss_fn, meta_params, p, task, adapted)

    g, metrics = jax.grad(outer, has_aux=True)(phi)
    (direction,), info = root_vjp(
        lambda p, t: optimality_fn(p, t, task.support_x, task.support_y),
        phi, (meta_params,), g, solve=solve)
    if on_cg_failure == "nan":
      direction = nan_unless(info.converged, direction)
    dtype = jnp.result_type(metrics["query_loss"])
    metrics = dict(metrics, cg_residual=info.residual.astype(dtype),
                   cg_iterations=info.iterations.astype(dtype))
    return direction, metrics

  # Jitted once per learner: called outside jit (e.g. in a Python loop over
  # tasks) the CG while_loop would otherwise be retraced and recompiled on
  # every call. Inside an outer jit this is inlined.
  return MetaLearner(init=lambda key, params: params, adapt=adapt, task_loss=task_loss,
                     task_grad=jax.jit(task_grad),
                     predict=adapted_predict(adapt, apply_fn, "imaml"))
