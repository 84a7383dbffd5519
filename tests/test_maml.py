"""Meta-gradients of the MAML family against finite differences and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from testing_utils import (first_task, linear_apply, linear_batch, linear_params,
                           sinusoid_batch, tiny_mlp)


def _meta_loss(learner, tasks):
  def f(meta_params):
    losses, _ = jax.vmap(lambda t: learner.task_loss(meta_params, t))(tasks)
    return jnp.mean(losses)
  return jax.jit(f)


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_second_order_matches_finite_differences(steps):
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=steps)
  check_grads(_meta_loss(learner, sinusoid_batch()), (params,), order=1, modes=["rev"],
              atol=1e-5, rtol=1e-5)


def test_maml_linear_regression_closed_form():
  alpha = 0.1
  task = first_task(linear_batch())
  w0 = jnp.array([[0.3], [-0.2], [0.5]])
  apply = lambda p, x: x @ p
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(alpha), steps=1)
  got = jax.grad(lambda p: learner.task_loss(p, task)[0])(w0)

  xs, ys, xq, yq = task
  n, m = xs.shape[0], xq.shape[0]
  w1 = w0 - alpha * (2.0 / n) * xs.T @ (xs @ w0 - ys)
  jac = jnp.eye(3) - alpha * (2.0 / n) * xs.T @ xs
  want = jac @ ((2.0 / m) * xq.T @ (xq @ w1 - yq))
  np.testing.assert_allclose(got, want, rtol=1e-10)
  # and the second-order term matters: first order gives something else
  fo = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(alpha), steps=1, first_order=True)
  got_fo = jax.grad(lambda p: fo.task_loss(p, task)[0])(w0)
  np.testing.assert_allclose(got_fo, (2.0 / m) * xq.T @ (xq @ w1 - yq), rtol=1e-10)
  assert np.max(np.abs(got_fo - want)) > 1e-3


def test_first_order_is_query_gradient_at_adapted_params():
  params, apply = tiny_mlp()
  loss = jmeta.mse_loss(apply)
  task = first_task(sinusoid_batch())
  learner = jmeta.fomaml(loss, optax.sgd(0.05), steps=3)
  got, _ = learner.task_grad(params, task)
  adapted = learner.adapt(params, task.support_x, task.support_y).params
  want = jax.grad(loss)(adapted, task.query_x, task.query_y)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want)


def test_adam_inner_optimizer_is_differentiated_through():
  params, apply = tiny_mlp()
  loss = jmeta.mse_loss(apply)
  tasks = sinusoid_batch(n=2)
  second = jmeta.maml(loss, optax.adam(0.05), steps=2)
  first = jmeta.maml(loss, optax.adam(0.05), steps=2, first_order=True)
  g2 = jax.grad(_meta_loss(second, tasks))(params)
  g1 = jax.grad(_meta_loss(first, tasks))(params)
  diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g2), jax.tree.leaves(g1)))
  assert diff > 1e-4
  check_grads(_meta_loss(second, tasks), (params,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_inner_schedule_and_chain_are_differentiable():
  params, apply = tiny_mlp()
  opt = optax.chain(optax.clip_by_global_norm(10.0),
                    optax.scale_by_rms(), optax.scale_by_schedule(optax.linear_schedule(-0.02, -0.005, 3)))
  learner = jmeta.maml(jmeta.mse_loss(apply), opt, steps=3)
  check_grads(_meta_loss(learner, sinusoid_batch(n=2)), (params,), order=1, modes=["rev"],
              atol=1e-5, rtol=1e-5)


def test_inner_losses_are_returned_and_decrease():
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch())
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.02), steps=5)
  res = learner.adapt(params, task.support_x, task.support_y)
  assert res.losses.shape == (6,)
  manual = jmeta.mse_loss(apply)(res.params, task.support_x, task.support_y)
  np.testing.assert_allclose(res.losses[-1], manual, rtol=1e-12)
  assert res.losses[-1] < res.losses[0]


def test_remat_gives_the_same_meta_gradient():
  params, apply = tiny_mlp()
  tasks = sinusoid_batch()
  a = jax.grad(_meta_loss(jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=3), tasks))(params)
  b = jax.grad(_meta_loss(jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=3, remat=True), tasks))(params)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-12), a, b)


def test_meta_sgd_learning_rates_get_meta_gradient():
  params, apply = tiny_mlp()
  learner = jmeta.meta_sgd(jmeta.mse_loss(apply), steps=1, init_lr=0.05)
  meta = learner.init(jax.random.key(0), params)
  g = jax.grad(_meta_loss(learner, sinusoid_batch()))(meta)
  assert all(float(jnp.max(jnp.abs(v))) > 0 for v in jax.tree.leaves(g["lr"]))
  check_grads(_meta_loss(learner, sinusoid_batch(n=2)), (meta,), order=1, modes=["rev"],
              atol=1e-5, rtol=1e-5)
  # one Meta-SGD step is params - lr * grad, elementwise
  task = first_task(sinusoid_batch())
  meta = jax.tree.map(lambda x: x, meta)
  meta["lr"] = jax.tree.map(lambda p: jnp.full(p.shape, 0.3, p.dtype), meta["lr"])
  adapted = learner.adapt(meta, task.support_x, task.support_y).params
  g0 = jax.grad(jmeta.mse_loss(apply))(params, task.support_x, task.support_y)
  jax.tree.map(lambda a, p, g: np.testing.assert_allclose(a, p - 0.3 * g, rtol=1e-12), adapted, params, g0)


def test_anil_adapts_only_the_mask():
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch())
  learner = jmeta.anil(jmeta.mse_loss(apply), optax.sgd(0.1), steps=3,
                       adapt=lambda p: jmeta.path_mask(p, "head"))
  adapted = learner.adapt(params, task.support_x, task.support_y).params
  np.testing.assert_array_equal(adapted["params"]["hidden_0"]["kernel"], params["params"]["hidden_0"]["kernel"])
  assert float(jnp.max(jnp.abs(adapted["params"]["head"]["kernel"] - params["params"]["head"]["kernel"]))) > 1e-4
  # the body still gets an outer gradient, and it passes finite differences
  g = jax.grad(_meta_loss(learner, sinusoid_batch()))(params)
  assert float(jnp.max(jnp.abs(g["params"]["hidden_0"]["kernel"]))) > 0
  check_grads(_meta_loss(learner, sinusoid_batch(n=2)), (params,), order=1, modes=["rev"],
              atol=1e-5, rtol=1e-5)


def test_reptile_update_equals_hand_computation():
  alpha, eps = 0.1, 0.5
  tasks = linear_batch(n=3)
  p0 = linear_params()
  loss = jmeta.mse_loss(linear_apply)
  learner = jmeta.reptile(loss, optax.sgd(alpha), steps=2)
  step = jmeta.make_meta_step(learner, optax.sgd(eps))
  state = step.init(jax.random.key(0), p0)
  state, _ = step.update(state, tasks)

  def adapt_by_hand(p, xs, ys):
    for _ in range(2):
      r = xs @ p["w"] + p["b"] - ys
      p = {"w": p["w"] - alpha * 2 * xs.T @ r / xs.shape[0], "b": p["b"] - alpha * 2 * jnp.mean(r)}
    return p

  adapted = [adapt_by_hand(p0, tasks.support_x[i], tasks.support_y[i]) for i in range(3)]
  for k in ("w", "b"):
    mean_phi = sum(a[k] for a in adapted) / 3
    want = p0[k] + eps * (mean_phi - p0[k])
    np.testing.assert_allclose(state.meta_params[k], want, rtol=1e-10)


def test_program_size_does_not_grow_with_inner_steps():
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch())

  def size(steps):
    learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=steps)
    grad = jax.grad(lambda p: learner.task_loss(p, task)[0])
    return len(str(jax.make_jaxpr(grad)(params)).splitlines())

  # Equal up to the printing of the step count (one line more on jax 0.6's printer):
  # an unrolled loop would grow the program by hundreds of lines per step.
  sizes = [size(2), size(50), size(1000)]
  assert max(sizes) - min(sizes) <= 2, sizes


@pytest.mark.parametrize("make", [
    lambda loss, **kw: jmeta.maml(loss, optax.sgd(0.05), steps=2, **kw),
    lambda loss, **kw: jmeta.anil(loss, optax.sgd(0.05),
                                  adapt=lambda p: jmeta.path_mask(p, "head"), **kw),
    lambda loss, **kw: jmeta.reptile(loss, optax.sgd(0.05), steps=2, **kw),
])
def test_metrics_before_off_keeps_the_gradient_and_saves_the_query_pass(make):
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch())
  on = make(jmeta.mse_loss(apply))
  off = make(jmeta.mse_loss(apply), metrics_before=False)
  g_on, m_on = jax.jit(on.task_grad)(params, task)
  g_off, m_off = jax.jit(off.task_grad)(params, task)
  for a, b in zip(jax.tree.leaves(g_on), jax.tree.leaves(g_off)):
    np.testing.assert_array_equal(a, b)
  assert "query_loss_before" in m_on
  assert set(m_off) == set(m_on) - {"query_loss_before"}
  for k in m_off:
    np.testing.assert_array_equal(m_on[k], m_off[k])

  def flops(learner):
    ca = jax.jit(learner.task_grad).lower(params, task).compile().cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    return ca["flops"]
  assert flops(off) < flops(on)
