"""Newton and Gauss-Newton inner steps: exact on quadratics, differentiable inside MAML."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from jmeta import NewtonState, gauss_newton, newton
from testing_utils import first_task, linear_apply, linear_batch, linear_params


def test_one_undamped_step_reaches_the_minimiser_and_gauss_newton_equals_newton():
  task = first_task(linear_batch())
  xs, ys = task.support_x, task.support_y
  loss = jmeta.mse_loss(linear_apply)
  p0 = linear_params()
  only_w = jax.tree.leaves({"w": True, "b": False})  # the inner loop's flat mask

  @jax.jit
  def run(p0):
    step = lambda opt, mask=None: jmeta.inner_loop(loss, p0, xs, ys, opt, 1, mask=mask)
    gn = gauss_newton(linear_apply, "mse")
    return (step(newton()), step(gn), step(newton(0.5, damping=0.3)),
            step(gauss_newton(linear_apply, "mse", 0.5, damping=0.3)),
            step(newton(), only_w), step(gn, only_w))

  full_n, full_gn, damped_n, damped_gn, masked_n, masked_gn = run(p0)
  aug = jnp.concatenate([xs, jnp.ones((xs.shape[0], 1))], axis=1)
  sol = jnp.linalg.lstsq(aug, ys)[0].ravel()
  np.testing.assert_allclose(full_n.params["w"].ravel(), sol[:3], rtol=1e-10)
  np.testing.assert_allclose(full_n.params["b"], sol[3], rtol=1e-10)
  assert float(full_n.losses[1]) < 1e-20 * float(full_n.losses[0]) + 1e-12
  close = lambda a, b: jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), a, b)
  close(full_gn.params, full_n.params)
  close(damped_gn.params, damped_n.params)
  close(masked_gn.params, masked_n.params)
  # a damped half step by hand: p - 0.5 (H + 0.3 I)^{-1} g
  t0 = jnp.concatenate([p0["w"].ravel(), p0["b"].reshape(1)])
  h = (2.0 / xs.shape[0]) * aug.T @ aug
  g = h @ t0 - (2.0 / xs.shape[0]) * aug.T @ ys.ravel()
  want = t0 - 0.5 * jnp.linalg.solve(h + 0.3 * jnp.eye(4), g)
  np.testing.assert_allclose(damped_n.params["w"].ravel(), want[:3], rtol=1e-10)
  # with a mask only w moves, to the least-squares w given the fixed bias
  np.testing.assert_array_equal(masked_n.params["b"], p0["b"])
  w_want = jnp.linalg.lstsq(xs, ys - p0["b"])[0]
  np.testing.assert_allclose(masked_n.params["w"], w_want, rtol=1e-10)


def _tanh_net(key=0):
  k1, k2 = jax.random.split(jax.random.key(key))
  params = {"w1": jax.random.normal(k1, (1, 5)), "b1": jnp.linspace(-1.0, 1.0, 5),
            "w2": jax.random.normal(k2, (5, 1)) / 3, "b2": jnp.zeros((1, 1))}
  return params, lambda p, x: jnp.tanh(x @ p["w1"] + p["b1"][None]) @ p["w2"] + p["b2"]


def _directional_check(f, args, *, also=None, eps=1e-5, seed=0):
  """``jax.grad`` of ``f`` along a random direction vs a central difference, in one program.

  ``also(args)`` is evaluated in the same compiled program (fewer compilations).
  """
  leaves, treedef = jax.tree.flatten(args)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  v = jax.tree.unflatten(treedef, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
  shift = lambda a, c: jax.tree.map(lambda x, d: x + c * d, a, v)

  @jax.jit
  def run(args):
    grads = jax.grad(lambda a: f(*a))(args)
    along = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(v)))
    fd = (f(*shift(args, eps)) - f(*shift(args, -eps))) / (2 * eps)
    return grads, along, fd, (None if also is None else also(args))

  return run(args)


def test_maml_through_newton_and_gauss_newton_steps_matches_finite_differences():
  # Newton on a convex problem (logistic regression), Gauss-Newton on a tanh MLP.
  logistic = jmeta.logistic_regression(shots=8, queries=8, dim=3, dtype=jnp.float64).sample(
      jax.random.key(1))
  logit_apply = lambda p, x: x @ p["w"] + p["b"]
  newton_step = newton(0.5, damping=0.1, cg_tol=1e-10)
  by_newton = jmeta.maml(jmeta.binary_cross_entropy_loss(logit_apply), newton_step, steps=1)
  net, apply = _tanh_net()
  regression = jmeta.sinusoid(shots=5, queries=5, dtype=jnp.float64).sample(jax.random.key(2))
  by_gn = jmeta.maml(jmeta.mse_loss(apply), gauss_newton(apply, "mse", 1.0, damping=0.1,
                                                         cg_tol=1e-10), steps=1)

  def meta_loss(p_logistic, p_net):
    return by_newton.task_loss(p_logistic, logistic)[0] + by_gn.task_loss(p_net, regression)[0]

  p_logistic = {"w": jnp.array([0.3, -0.2, 0.1]), "b": jnp.asarray(0.05)}
  first_order = jmeta.maml(jmeta.binary_cross_entropy_loss(logit_apply), newton_step, steps=1,
                           first_order=True)
  also = lambda args: jax.grad(lambda p: first_order.task_loss(p, logistic)[0])(args[0])
  (g_newton, g_net), along, fd, g_fo = _directional_check(meta_loss, (p_logistic, net), also=also)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(g_net))
  assert abs(float(along)) > 1e-2
  np.testing.assert_allclose(along, fd, rtol=1e-6)
  # the second-order terms matter: first-order MAML gives something else
  assert float(jnp.max(jnp.abs(g_fo["w"] - g_newton["w"]))) > 1e-4


def test_unconverged_solve_makes_the_step_nan_or_is_recorded():
  task = first_task(linear_batch(dim=3))
  loss = lambda p: jmeta.mse_loss(linear_apply)(p, task.support_x, task.support_y)
  p0 = linear_params()
  grads = jax.grad(loss)(p0)

  def one_step(policy):
    opt = newton(cg_steps=1, cg_tol=1e-8, on_cg_failure=policy)
    return opt.update(grads, opt.init(p0), p0, value_fn=loss)

  (strict, s_strict), (loose, s_loose) = jax.jit(lambda: (one_step("nan"), one_step("ignore")))()
  assert all(bool(jnp.all(jnp.isnan(u))) for u in jax.tree.leaves(strict))
  assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(loose))
  for s in (s_strict, s_loose):
    assert isinstance(s, NewtonState) and int(s.cg_iterations) == 1 and float(s.cg_residual) > 1e-8
  assert s_strict.cg_residual.dtype == jnp.float64


def test_missing_extra_arguments_and_bad_configuration_raise():
  p0 = linear_params()
  g = jax.tree.map(jnp.ones_like, p0)
  opt = newton()
  with pytest.raises(ValueError, match="value_fn"):
    opt.update(g, opt.init(p0), p0)
  gn = gauss_newton(linear_apply)
  with pytest.raises(ValueError, match="inputs and targets"):
    gn.update(g, gn.init(p0), p0)
  with pytest.raises(ValueError, match="needs params"):
    opt.update(g, opt.init(p0))
  with pytest.raises(ValueError, match="damping"):
    newton(damping=-1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    newton(0.0)
  with pytest.raises(ValueError, match="cg_steps"):
    newton(cg_steps=0)
  with pytest.raises(ValueError, match="output_loss must be one of"):
    gauss_newton(linear_apply, "hinge")
  with pytest.raises(TypeError, match="apply_fn must be callable"):
    gauss_newton(None)


@pytest.mark.parametrize("which", ["newton", "gauss_newton"])
def test_newton_steps_on_a_conv_net_with_reverse_mode_only_convolutions(which):
  # The CPU's default convolution (conv_impl="xla_vjp") is a custom_vjp with no
  # JVP: the curvature products are reverse mode only, so MAML through a Newton
  # step on a conv net runs, and its meta-gradient equals the one through plain
  # autodiff of lax.conv (conv_impl="xla").
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1), jnp.float64)
  y = jax.nn.one_hot(jnp.arange(6) % 3, 3, dtype=jnp.float64)
  nets = {i: jmeta.ConvNet(ways=3, hidden=3, blocks=2, norm="none", conv_impl=i)
          for i in ("xla_vjp", "xla")}
  params = jax.tree.map(lambda p: p.astype(jnp.float64), nets["xla"].init(jax.random.key(1), x))

  def meta_grad(impl):
    apply = nets[impl].apply
    loss = jmeta.mse_loss(apply)
    opt = (newton(0.5, damping=20.0, cg_steps=50, cg_tol=1e-10) if which == "newton"
           else gauss_newton(apply, "mse", 0.5, damping=1.0, cg_steps=50, cg_tol=1e-10))
    def outer(p):
      adapted = jmeta.inner_loop(loss, p, x[:3], y[:3], opt, 1).params
      return loss(adapted, x[3:], y[3:])
    return jax.grad(outer)(params)

  got, want = jax.jit(lambda: (meta_grad("xla_vjp"), meta_grad("xla")))()
  assert float(optax.tree.norm(want)) > 1e-3
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10), got, want)
