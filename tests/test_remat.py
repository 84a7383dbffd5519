"""Remat policies of the inner unroll, second-order windows and truncated back-propagation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from jmeta import checkpointed_scan, segment_sizes
from testing_utils import first_task, linear_apply, linear_batch, linear_params, sinusoid_batch, tiny_mlp

POLICIES = (True, "sqrt", "log")


@pytest.mark.parametrize("length", [1, 5, 8, 13, 100])
@pytest.mark.parametrize("policy", ["sqrt", "log"])
def test_segment_sizes_cover_the_length_with_little_padding(length, policy):
  sizes = segment_sizes(length, policy)
  assert math.prod(sizes) >= length
  levels = 2 if policy == "sqrt" else math.ceil(math.log2(max(length, 2)))
  assert len(sizes) <= levels
  assert math.prod(sizes) < 2 * length or length <= 2


def test_checkpointed_scan_matches_plain_scan_values_and_gradients():
  # A scalar nonlinear recurrence of 13 steps (padded to 16 by "log", to 16 by "sqrt").
  def run(a, remat):
    def step(c):
      x, s = c
      x = jnp.sin(a * x) + 0.5 * x
      return (x, s + x * x), x
    (x, s), ys = checkpointed_scan(step, (jnp.asarray(0.3), jnp.asarray(0.0)), 13, remat=remat)
    return s + jnp.sum(ys ** 3), ys

  check = jax.jit(lambda a: [jax.value_and_grad(run, has_aux=True)(a, r) for r in (False,) + POLICIES])
  (ref, ref_grad), *others = check(1.3)
  assert ref[1].shape == (13,)
  for out, grad in others:
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-13), out, ref)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12)


def test_meta_gradients_of_every_policy_equal_the_plain_ones():
  # Adam carries a state through the unroll; 7 steps is not a power of 2 (padding is skipped).
  params, apply = tiny_mlp()
  tasks = sinusoid_batch(n=2)
  loss = jmeta.mse_loss(apply)
  learners = [jmeta.maml(loss, optax.adam(0.05), steps=7, remat=r) for r in (False,) + POLICIES]
  ref, *others = jax.jit(lambda p: [
      jmeta.mean_over_tasks(lambda t: l.task_grad(p, t), tasks) for l in learners])(params)
  for other in others:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13), other, ref)


def _features(x):
  return np.concatenate([np.asarray(x), np.ones((x.shape[0], 1))], axis=1)


@pytest.mark.parametrize("second_order_steps", [None, 2, 9])
def test_second_order_window_meta_gradient_equals_hand_computation(second_order_steps):
  # Linear regression with MSE: the support Hessian H = 2/m Z^T Z is constant, so
  # phi_{t+1} = phi_t - lr (H phi_t - 2/m Z^T y). Steps before the last k are first
  # order (identity Jacobian), so d L_q / d theta = (I - lr H)^k grad L_q(phi_n).
  steps, lr = 5, 0.1
  task = first_task(linear_batch(n=1, dim=3))
  params = linear_params(dim=3)
  learner = jmeta.maml(jmeta.mse_loss(linear_apply), optax.sgd(lr), steps=steps,
                       second_order_steps=second_order_steps)
  grad, _ = jax.jit(learner.task_grad)(params, task)

  zs, ys = _features(task.support_x), np.asarray(task.support_y)
  zq, yq = _features(task.query_x), np.asarray(task.query_y)
  hess = 2.0 / len(zs) * zs.T @ zs
  phi = np.concatenate([np.asarray(params["w"]), np.asarray(params["b"]).reshape(1, 1)])
  for _ in range(steps):
    phi = phi - lr * (hess @ phi - 2.0 / len(zs) * zs.T @ ys)
  g = 2.0 / len(zq) * zq.T @ (zq @ phi - yq)
  k = steps if second_order_steps is None else min(second_order_steps, steps)
  g = np.linalg.matrix_power(np.eye(4) - lr * hess, k) @ g
  np.testing.assert_allclose(grad["w"], g[:3], rtol=1e-10)
  np.testing.assert_allclose(grad["b"], g[3, 0], rtol=1e-10)


def test_second_order_window_composes_with_remat_and_keeps_the_losses():
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch(n=1))
  loss = jmeta.mse_loss(apply)
  a = jmeta.maml(loss, optax.sgd(0.05), steps=6, second_order_steps=2)
  b = jmeta.maml(loss, optax.sgd(0.05), steps=6, second_order_steps=2, remat="log")
  plain = jmeta.maml(loss, optax.sgd(0.05), steps=6)
  (ga, ma), (gb, mb), losses, windowed_losses = jax.jit(lambda p, t: (
      a.task_grad(p, t), b.task_grad(p, t), plain.adapt(p, t.support_x, t.support_y).losses,
      a.adapt(p, t.support_x, t.support_y).losses))(params, task)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10), (ga, ma), (gb, mb))
  np.testing.assert_allclose(windowed_losses, losses, rtol=1e-13)
  assert losses.shape == (7,)


def test_log_policy_memory_grows_far_slower_than_the_unroll():
  # XLA's temporary buffers of the compiled meta-gradient on a 2x16 MLP: a 1,000-step
  # unroll with the "log" policy fits in twice the memory of a 10-step one and in less
  # than the plain 10-step unroll (the plain 1,000-step one takes about 80 times more).
  model = jmeta.MLP(hidden=(16, 16), out=1)
  params = model.init(jax.random.key(0), jnp.zeros((1, 1)))
  tasks = sinusoid_batch(n=4)
  loss = jmeta.mse_loss(model.apply)

  def temp_bytes(steps, remat):
    learner = jmeta.maml(loss, optax.sgd(0.01), steps=steps, remat=remat)
    fn = jax.jit(lambda p: jmeta.mean_over_tasks(lambda t: learner.task_grad(p, t), tasks))
    return fn.lower(params).compile().memory_analysis().temp_size_in_bytes

  long = temp_bytes(1000, "log")
  assert long <= 2 * temp_bytes(10, "log")
  assert long <= temp_bytes(10, False)


@pytest.mark.parametrize("kwargs,message", [
    ({"remat": "binomial"}, "remat must be False, True, 'none', 'step', 'sqrt' or 'log'"),
    ({"second_order_steps": 0}, "second_order_steps must be None or a positive int"),
    ({"second_order_steps": 2.0}, "second_order_steps must be None or a positive int"),
])
def test_bad_options_are_rejected_before_tracing(kwargs, message):
  _, apply = tiny_mlp()
  with pytest.raises(ValueError, match=message):
    jmeta.maml(jmeta.mse_loss(apply), steps=3, **kwargs)


def test_truncation_composes_with_the_second_order_window_and_remat():
  # 5 Adam steps cut into segments of 2 (2 + 2 + 1), the last 3 second order: the numbers
  # of a direct Python loop that cuts the same way, with and without nested remat, and the
  # values (not the gradient) of the plain unroll.
  task = first_task(linear_batch(n=1, dim=3))
  x, y = task.support_x, task.support_y
  loss = jmeta.mse_loss(linear_apply)
  opt = optax.adam(0.05)

  def objective(p, **kwargs):
    res = jmeta.inner_loop(loss, p, x, y, opt, 5, **kwargs)
    return jnp.sum(res.losses[1:]), res.losses

  def loop(p):
    s, losses = opt.init(p), []
    for i in range(5):
      if i in (2, 4):
        p, s = jax.lax.stop_gradient((p, s))
      value, g = jax.value_and_grad(loss)(p, x, y)
      if i < 2:
        g = jax.lax.stop_gradient(g)
      losses.append(value)
      u, s = opt.update(g, s, p)
      p = optax.apply_updates(p, u)
    losses.append(loss(p, x, y))
    return sum(losses[1:]), jnp.stack(losses)

  cut = dict(truncation=2, second_order_steps=3)
  grad = lambda f, **kw: jax.value_and_grad(f, has_aux=True)(linear_params(dim=3), **kw)
  ref, outs, full = jax.jit(lambda: (grad(loop), [grad(objective, remat=r, **cut) for r in (False, "log")],
                                     grad(objective)))()
  np.testing.assert_allclose(full[0][1], ref[0][1], rtol=1e-13)
  for out in outs:
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13), out, ref)
  assert not np.allclose(full[1]["w"], ref[1]["w"])


def test_every_unrolling_learner_takes_the_one_remat_type():
  # remat: bool | str on every learner with a differentiated unroll, checked by one function.
  _, apply = tiny_mlp()
  loss = jmeta.mse_loss(apply)
  factories = {
      "maml": lambda r: jmeta.maml(loss, remat=r), "fomaml": lambda r: jmeta.fomaml(loss, remat=r),
      "meta_sgd": lambda r: jmeta.meta_sgd(loss, remat=r),
      "anil": lambda r: jmeta.anil(loss, adapt=lambda p: p, remat=r),
      "reptile": lambda r: jmeta.reptile(loss, remat=r),
      "maml_plus_plus": lambda r: jmeta.maml_plus_plus(loss, remat=r),
      "learned_optimizer": lambda r: jmeta.learned_optimizer(loss, remat=r),
      "learned_loss": lambda r: jmeta.learned_loss(apply, loss, remat=r),
      "learned_hyperparams": lambda r: jmeta.learned_hyperparams(loss, remat=r),
  }
  for name, make in factories.items():
    for remat in (False, True, "none", "step", "sqrt", "log"):
      assert isinstance(make(remat), jmeta.MetaLearner), name
    with pytest.raises(ValueError, match="remat must be False, True, 'none', 'step', 'sqrt' or 'log'"):
      make("binomial")
