"""MAML++: learned per-step rates, multi-step loss, derivative-order annealing, per-step norms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms._maml_plus_plus import maml_plus_plus, multi_step_weights
from testing_utils import first_task, linear_batch, tiny_mlp


def apply(params, x):
  return x @ params["w"] + params["norm"]["b"]


def params0():
  return {"w": jnp.asarray([[0.3], [-0.2], [0.5]], jnp.float64),
          "norm": {"b": jnp.asarray(0.1, jnp.float64)}}


def per_step(p):
  return jmeta.path_mask(p, "norm")


def test_multi_step_weights_schedule():
  s, anneal = 4, 100
  np.testing.assert_allclose(multi_step_weights(0, s, anneal), [0.25] * 4)
  w = multi_step_weights(40, s, anneal)
  decay = 0.25 / anneal
  np.testing.assert_allclose(w, [0.25 - 40 * decay] * 3 + [0.25 + 3 * 40 * decay], rtol=1e-12)
  # Floors at 0.03 / S, then the final loss alone.
  np.testing.assert_allclose(multi_step_weights(99, s, anneal), [0.03 / 4] * 3 + [1 - 3 * 0.03 / 4])
  np.testing.assert_allclose(multi_step_weights(100, s, anneal), [0, 0, 0, 1])
  np.testing.assert_allclose(multi_step_weights(0, s, 0), [0, 0, 0, 1])
  for step in (0, 10, 60, 99, 150):
    np.testing.assert_allclose(jnp.sum(multi_step_weights(step, s, anneal)), 1.0, rtol=1e-12)


def test_multi_step_loss_with_per_step_rates_and_norms_equals_hand_computation():
  steps, anneal = 3, 50
  loss_fn = jmeta.mse_loss(apply)
  learner = maml_plus_plus(loss_fn, steps=steps, init_lr=0.1, per_step=per_step,
                           multi_step_steps=anneal)
  mp = learner.init(jax.random.key(0), params0())
  assert mp["params"]["norm"]["b"].shape == (steps,) and mp["lr"]["norm"]["b"] is None
  assert mp["lr"]["w"].shape == (steps,)
  lrs = jnp.asarray([0.1, 0.2, 0.3], jnp.float64)
  biases = jnp.asarray([0.1, -0.2, 0.3], jnp.float64)
  mp = {"params": {"w": mp["params"]["w"], "norm": {"b": biases}},
        "lr": {"w": lrs, "norm": {"b": None}}}
  task = first_task(linear_batch(n=1))

  def mse(w, b, x, y):
    return jnp.mean((x @ w + b - y) ** 2)

  w, q = params0()["w"], []
  for i in range(steps):
    w = w - lrs[i] * jax.grad(mse)(w, biases[i], task.support_x, task.support_y)
    q.append(mse(w, biases[i], task.query_x, task.query_y))
  step = 20
  weights = multi_step_weights(step, steps, anneal)
  expected = sum(float(weights[i]) * q[i] for i in range(steps))
  loss, metrics = jax.jit(learner.task_loss)(mp, task, step)
  np.testing.assert_allclose(loss, expected, rtol=1e-12)
  np.testing.assert_allclose(metrics["query_loss"], q[-1], rtol=1e-12)
  np.testing.assert_allclose(metrics["query_loss_before"],
                             mse(params0()["w"], biases[0], task.query_x, task.query_y), rtol=1e-12)

  # LSLR: every per-step rate and every per-step norm copy gets a meta-gradient, which is right.
  grads, _ = jax.jit(learner.task_grad)(mp, task, step)
  assert np.all(np.abs(grads["lr"]["w"]) > 0) and np.all(np.abs(grads["params"]["norm"]["b"]) > 0)
  check_grads(jax.jit(lambda m: learner.task_loss(m, task, step)[0]), (mp,), order=1,
              modes=("rev",), atol=1e-6, rtol=1e-6)


def test_derivative_order_annealing_matches_fomaml_then_maml():
  params, mlp = tiny_mlp()
  loss_fn = jmeta.mse_loss(mlp)
  task = first_task(linear_batch(n=1, dim=1))
  learner = maml_plus_plus(loss_fn, steps=2, init_lr=0.05, first_order_steps=10)
  mp = learner.init(jax.random.key(0), params)
  grad = jax.jit(learner.task_grad)  # one program for both phases
  g_first, _ = grad(mp, task, jnp.asarray(3, jnp.int32))
  g_second, _ = grad(mp, task, jnp.asarray(10, jnp.int32))
  fo = jmeta.fomaml(loss_fn, optax.sgd(0.05), steps=2).task_grad(params, task)[0]
  so = jmeta.maml(loss_fn, optax.sgd(0.05), steps=2).task_grad(params, task)[0]
  tol = dict(rtol=1e-10, atol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), g_first["params"], fo)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **tol), g_second["params"], so)
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(fo), jax.tree.leaves(so)))


def test_adapt_with_more_steps_reuses_the_last_rates_and_bad_config():
  learner = maml_plus_plus(jmeta.mse_loss(apply), steps=2, per_step=per_step)
  mp = learner.init(jax.random.key(0), params0())
  task = first_task(linear_batch(n=1))
  out = learner.adapt(mp, task.support_x, task.support_y, steps=4)
  assert out.losses.shape == (5,) and out.params["norm"]["b"].shape == ()
  assert float(out.losses[-1]) < float(out.losses[0])
  loss0, m0 = learner.task_loss(mp, task, 0, steps=0)
  np.testing.assert_allclose(loss0, m0["query_loss_before"])
  with pytest.raises(ValueError, match="steps must be >= 1"):
    maml_plus_plus(jmeta.mse_loss(apply), steps=0)
  with pytest.raises(ValueError, match="init_lr must be positive"):
    maml_plus_plus(jmeta.mse_loss(apply), init_lr=0.0)
  with pytest.raises(ValueError, match="nothing is left to adapt"):
    maml_plus_plus(jmeta.mse_loss(apply), per_step=lambda p: jax.tree.map(lambda _: True, p)).init(
        jax.random.key(0), params0())
