"""custom_root, conjugate gradient and iMAML against closed forms, finite differences and unrolls."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from jmeta import cg, custom_root, imaml, newton, normal_cg, root_vjp
from testing_utils import (first_task, linear_apply, linear_batch, linear_params,
                           sinusoid_batch, tiny_mlp)


def _spd(n, seed=0, cond=10.0):
  q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (n, n)))
  return q @ jnp.diag(jnp.geomspace(1.0, cond, n)) @ q.T


def test_cg_solves_spd_systems_on_pytrees_and_reports():
  a = _spd(5)
  b = jnp.arange(1.0, 6.0)
  split = lambda v: {"u": v[:2], "v": v[2:].reshape(3, 1)}
  join = lambda t: jnp.concatenate([t["u"], t["v"].ravel()])

  @jax.jit
  def run(b):
    full, info = cg(lambda t: split(a @ join(t)), split(b), maxiter=20, tol=1e-12)
    short, short_info = cg(lambda v: a @ v, b, maxiter=2, tol=1e-12)
    zero, zero_info = cg(lambda v: a @ v, jnp.zeros(5), maxiter=5, tol=1e-12)
    indef, indef_info = cg(lambda v: jnp.diag(jnp.array([1.0, -2.0, 3.0, 1.0, 1.0])) @ v, b,
                           maxiter=20, tol=1e-8)
    return full, info, short_info, zero, zero_info, indef_info

  full, info, short_info, zero, zero_info, indef_info = run(b)
  np.testing.assert_allclose(join(full), jnp.linalg.solve(a, b), rtol=1e-10)
  assert bool(info.converged) and float(info.residual) <= 1e-12 and 1 <= int(info.iterations) <= 20
  # two iterations are not enough: reported, not hidden
  assert int(short_info.iterations) == 2 and not bool(short_info.converged)
  assert float(short_info.residual) > 1e-3
  assert int(zero_info.iterations) == 0 and float(zero_info.residual) == 0.0
  np.testing.assert_array_equal(zero, jnp.zeros(5))
  # an indefinite operator is flagged even if the residual got small
  assert not bool(indef_info.converged)


def test_normal_cg_solves_nonsymmetric_systems():
  a = 3.0 * jnp.eye(4) + jax.random.normal(jax.random.key(1), (4, 4))
  b = jnp.array([1.0, -2.0, 0.5, 3.0])
  x, info = jax.jit(lambda b: normal_cg(lambda v: a @ v, b, maxiter=50, tol=1e-10))(b)
  np.testing.assert_allclose(x, jnp.linalg.solve(a, b), rtol=1e-8)
  assert bool(info.converged) and float(info.residual) < 1e-9


# A strongly convex inner problem with a nonlinear root: F = grad of
# sum(log cosh(B x)) + a/2 ||x||^2 - c.x, whose Jacobian B^T sech^2 B + a I is SPD.
def _optimality(x, a, bmat, c):
  return bmat.T @ jnp.tanh(bmat @ x) + a * x - c


def _newton_solver(init, a, bmat, c):
  def body(_, x):
    jac = jax.jacobian(_optimality)(x, a, bmat, c)
    return x - jnp.linalg.solve(jac, _optimality(x, a, bmat, c))
  return jax.lax.fori_loop(0, 30, body, init)


def _root_problem():
  bmat = jax.random.normal(jax.random.key(2), (5, 3))
  return jnp.asarray(0.7), bmat, jnp.array([0.5, -1.0, 2.0])


def test_custom_root_matches_finite_differences_and_the_unrolled_solver():
  solver = custom_root(_optimality, maxiter=50, tol=1e-12)(_newton_solver)
  objective = lambda a, bmat, c: jnp.sum(jnp.sin(solver(jnp.zeros(3), a, bmat, c)))
  unrolled = lambda a, bmat, c: jnp.sum(jnp.sin(_newton_solver(jnp.zeros(3), a, bmat, c)))
  args = _root_problem()
  v = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=x.dtype) + 1.0).reshape(x.shape), args)
  eps = 1e-5

  @jax.jit
  def run(args):
    sol = solver(jnp.zeros(3), *args)
    got = jax.grad(objective, argnums=(0, 1, 2))(*args)
    want = jax.grad(unrolled, argnums=(0, 1, 2))(*args)
    shifted = lambda c: objective(*jax.tree.map(lambda x, d: x + c * d, args, v))
    fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
    return _optimality(sol, *args), got, want, fd

  residual, got, want, fd = run(args)
  np.testing.assert_allclose(residual, jnp.zeros(3), atol=1e-12)
  jax.tree.map(lambda u, w: np.testing.assert_allclose(u, w, rtol=1e-9, atol=1e-12), got, want)
  along = sum(jnp.vdot(g, d) for g, d in zip(got, v))
  assert abs(float(along)) > 1e-2
  np.testing.assert_allclose(along, fd, rtol=1e-7)


def test_custom_root_normal_cg_for_a_nonsymmetric_jacobian():
  a = 3.0 * jnp.eye(4) + jax.random.normal(jax.random.key(3), (4, 4))
  b = jnp.array([1.0, -2.0, 0.5, 3.0])
  solver = custom_root(lambda x, a, b: a @ x - b, solve="normal_cg", maxiter=60, tol=1e-10)(
      lambda init, a, b: jnp.linalg.solve(a, b))
  f = lambda a, b: jnp.sum(solver(None, a, b) ** 2)
  g = lambda a, b: jnp.sum(jnp.linalg.solve(a, b) ** 2)
  got = jax.grad(f, argnums=(0, 1))(a, b)
  want = jax.grad(g, argnums=(0, 1))(a, b)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-7, atol=1e-10), got, want)


def test_unconverged_solve_gives_nan_gradient_or_is_reported():
  args = _root_problem()
  objective = lambda policy: lambda a, bmat, c: jnp.sum(
      custom_root(_optimality, maxiter=1, tol=1e-8, on_failure=policy)(_newton_solver)(
          jnp.zeros(3), a, bmat, c))
  exact_fn = lambda *a: jnp.sum(_newton_solver(jnp.zeros(3), *a))
  nan_grad, rough, exact = jax.jit(lambda args: (
      jax.grad(objective("nan"))(*args), jax.grad(objective("ignore"))(*args),
      jax.grad(exact_fn)(*args)))(args)
  assert bool(jnp.isnan(nan_grad))
  assert bool(jnp.isfinite(rough)) and abs(float(rough - exact)) > 1e-6
  sol = _newton_solver(jnp.zeros(3), *args)
  _, info = root_vjp(_optimality, sol, args, jnp.ones(3), solve=functools.partial(cg, maxiter=1, tol=1e-8))
  assert int(info.iterations) == 1 and not bool(info.converged) and float(info.residual) > 1e-8


# ---- iMAML on linear regression with squared loss: everything in closed form.

LAM = 0.5


def _closed_form(task, theta, lam):
  xs, ys, xq, yq = task
  n, m = xs.shape[0], xq.shape[0]
  aug = lambda x: jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
  xs, xq = aug(xs), aug(xq)
  t = jnp.concatenate([theta["w"].ravel(), theta["b"].reshape(1)])
  h = (2.0 / n) * xs.T @ xs
  phi = jnp.linalg.solve(h + lam * jnp.eye(4), lam * t + (2.0 / n) * xs.T @ ys.ravel())
  gq = (2.0 / m) * xq.T @ (xq @ phi - yq.ravel())
  grad = lam * jnp.linalg.solve(h + lam * jnp.eye(4), gq)
  split = lambda v: {"w": v[:3].reshape(3, 1), "b": v[3]}
  return split(phi), split(grad), split(gq)


def test_imaml_meta_gradient_is_exact_on_ridge_and_equals_a_converged_unroll():
  task = first_task(linear_batch())
  theta = linear_params()
  loss = jmeta.mse_loss(linear_apply)
  by_newton = imaml(loss, newton(1.0, cg_steps=10, cg_tol=1e-13), steps=1, lam=LAM,
                    cg_steps=10, cg_tol=1e-12)
  by_sgd = imaml(loss, optax.sgd(0.05), steps=600, lam=LAM, cg_steps=10, cg_tol=1e-12)

  def unrolled_maml(theta):
    prox = lambda p, x, y: loss(p, x, y) + 0.5 * LAM * sum(
        jnp.sum((u - v) ** 2) for u, v in zip(jax.tree.leaves(p), jax.tree.leaves(theta)))
    phi = jmeta.inner_loop(prox, theta, task.support_x, task.support_y, optax.sgd(0.05), 600).params
    return loss(phi, task.query_x, task.query_y)

  @jax.jit
  def run(theta):
    return (by_newton.adapt(theta, task.support_x, task.support_y).params,
            by_newton.task_grad(theta, task),
            jax.grad(lambda t: by_newton.task_loss(t, task)[0])(theta),
            by_sgd.task_grad(theta, task)[0],
            jax.grad(unrolled_maml)(theta))

  phi, (g_newton, metrics), g_autodiff, g_sgd, g_unrolled = run(theta)
  phi_want, g_want, g_first_order = _closed_form(task, theta, LAM)
  close = lambda a, b, rtol: jax.tree.map(
      lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-12), a, b)
  close(phi, phi_want, 1e-10)            # one Newton step solves the proximal problem
  close(g_newton, g_want, 1e-9)          # the implicit gradient is the analytic one
  close(g_autodiff, g_want, 1e-9)        # jax.grad(task_loss) goes through custom_root
  close(g_sgd, g_want, 1e-7)             # inner loop by SGD, run to convergence
  close(g_unrolled, g_want, 1e-7)        # the long unroll agrees
  assert float(metrics["cg_residual"]) <= 1e-12 and 1 <= float(metrics["cg_iterations"]) <= 10
  # and it is not the first-order gradient
  assert float(jnp.max(jnp.abs(g_want["w"] - g_first_order["w"]))) > 1e-2


def test_imaml_unconverged_cg_is_reported_and_skipped():
  tasks = linear_batch(n=2)
  loss = jmeta.mse_loss(linear_apply)
  learner = imaml(loss, optax.sgd(0.05), steps=5, lam=0.01, cg_steps=1, cg_tol=1e-6)
  # "ignore" uses the rough gradient but still reports the residual
  lenient = imaml(loss, optax.sgd(0.05), steps=5, lam=0.01, cg_steps=1, cg_tol=1e-6,
                  on_cg_failure="ignore")
  step = jmeta.make_meta_step(learner, optax.sgd(0.1))
  lenient_step = jmeta.make_meta_step(lenient, optax.sgd(0.1))
  state = step.init(jax.random.key(0), linear_params())
  (new, m), (_, m2) = jax.jit(lambda s: (step.step_fn(s, tasks), lenient_step.step_fn(s, tasks)))(state)
  assert float(m["cg_residual"]) > 1e-6 and float(m["cg_iterations"]) == 1.0
  assert m["finite"] == 0.0 and int(new.skipped) == 1
  jax.tree.map(np.testing.assert_array_equal, new.meta_params, state.meta_params)
  assert m2["finite"] == 1.0 and float(m2["cg_residual"]) > 1e-6
  strict = jmeta.make_meta_step(learner, optax.sgd(0.1), on_nonfinite="raise")
  with pytest.raises(FloatingPointError, match="non-finite"):
    strict.update(state, tasks)


def test_bad_configuration_raises_clear_errors():
  loss = jmeta.mse_loss(linear_apply)
  with pytest.raises(ValueError, match="lam"):
    imaml(loss, lam=0.0)
  with pytest.raises(ValueError, match="cg_steps"):
    imaml(loss, cg_steps=0)
  with pytest.raises(ValueError, match="cg_tol"):
    imaml(loss, cg_tol=-1.0)
  with pytest.raises(ValueError, match="on_cg_failure"):
    imaml(loss, on_cg_failure="warn")
  with pytest.raises(TypeError, match="inner_opt must be an optax"):
    imaml(loss, inner_opt=0.1)
  with pytest.raises(ValueError, match="steps must be a non-negative int"):
    imaml(loss, steps=2.5)
  with pytest.raises(ValueError, match="solve must be"):
    custom_root(_optimality, solve="gmres")
  with pytest.raises(ValueError, match="on_failure"):
    custom_root(_optimality, on_failure="warn")
  with pytest.raises(TypeError, match="optimality_fn must be callable"):
    custom_root(None)


def test_imaml_meta_gradient_memory_does_not_grow_with_inner_steps():
  # A nonlinear model: for a quadratic loss the unrolled backward pass needs no
  # per-step residuals and MAML's memory would not grow either.
  theta, apply = tiny_mlp()
  task = first_task(sinusoid_batch())
  loss = jmeta.mse_loss(apply)

  def temp_bytes(learner):
    compiled = jax.jit(lambda t: learner.task_grad(t, task)[0]).lower(theta).compile()
    mem = compiled.memory_analysis()
    if mem is None:
      pytest.skip("this backend has no memory analysis")
    return mem.temp_size_in_bytes

  implicit = [temp_bytes(imaml(loss, optax.sgd(0.05), steps=n, lam=LAM)) for n in (2, 64)]
  unrolled = [temp_bytes(jmeta.maml(loss, optax.sgd(0.05), steps=n)) for n in (2, 64)]
  assert implicit[1] == implicit[0]
  assert unrolled[1] > unrolled[0] + 62 * 8 * 8  # 62 more steps of >= 8 float64 activations
