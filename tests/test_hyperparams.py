"""Meta-learned hyperparameters: hypergradients vs closed forms and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta import (hypergradient_sgd, hyperparams_of, learned_hyperparams,
                   sgd_with_weight_decay)
from testing_utils import first_task, linear_apply, linear_batch, linear_params


def _np_grad(w, b, x, y):
  """Gradient of mean((x w + b - y)^2) in (w, b)."""
  r = x @ w + b - y
  return 2 * x.T @ r / len(x), 2 * np.mean(r)


def test_one_step_hypergradient_matches_closed_form():
  lr, wd = 0.3, 0.05
  learner = learned_hyperparams(jmeta.mse_loss(linear_apply), init={"learning_rate": lr, "weight_decay": wd},
                                steps=1)
  params = linear_params()
  mp = learner.init(jax.random.key(0), params)
  task = first_task(linear_batch())
  (loss, _), g = jax.jit(jax.value_and_grad(learner.task_loss, has_aux=True))(mp, task)
  # w1 = w0 - lr (grad_train(w0) + wd w0); d val / d lr = -<grad_val(w1), grad_train + wd w0>
  w0, b0 = np.asarray(params["w"]), float(params["b"])
  x, y, xv, yv = (np.asarray(v) for v in task)
  gw, gb = _np_grad(w0, b0, x, y)
  dw, db = gw + wd * w0, gb + wd * b0
  w1, b1 = w0 - lr * dw, b0 - lr * db
  vw, vb = _np_grad(w1, b1, xv, yv)
  np.testing.assert_allclose(loss, np.mean((xv @ w1 + b1 - yv) ** 2), rtol=1e-12)
  d_lr = -(np.sum(vw * dw) + vb * db)
  d_wd = -lr * (np.sum(vw * w0) + vb * b0)
  np.testing.assert_allclose(g["log_hyperparams"]["learning_rate"], lr * d_lr, rtol=1e-10)
  np.testing.assert_allclose(g["log_hyperparams"]["weight_decay"], wd * d_wd, rtol=1e-10)
  assert all(float(jnp.max(jnp.abs(v))) == 0.0 for v in jax.tree.leaves(g["params"]))


def test_schedule_is_injected_per_step_and_passes_check_grads():
  loss = jmeta.mse_loss(linear_apply)
  learner = learned_hyperparams(loss, init={"learning_rate": 0.1, "weight_decay": 0.01},
                                per_step=("learning_rate",), steps=3)
  params = linear_params(dim=2)
  task = first_task(linear_batch(dim=2))
  mp = learner.init(jax.random.key(0), params)
  mp["log_hyperparams"]["learning_rate"] = jnp.log(jnp.asarray([0.05, 0.2, 0.1]))
  adapted = jax.jit(lambda m: learner.adapt(m, task.support_x, task.support_y))(mp)
  p = params
  for lr in (0.05, 0.2, 0.1):
    g = jax.grad(loss)(p, task.support_x, task.support_y)
    p = jax.tree.map(lambda a, d: a - lr * (d + 0.01 * a), p, g)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), adapted.params, p)
  f = jax.jit(lambda h: learner.task_loss({"params": params, "log_hyperparams": h}, task)[0])
  check_grads(f, (mp["log_hyperparams"],), order=1, modes=("rev",), eps=1e-6, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(hyperparams_of(mp)["learning_rate"], [0.05, 0.2, 0.1], rtol=1e-12)


def test_meta_steps_raise_a_too_small_learning_rate():
  learner = learned_hyperparams(jmeta.mse_loss(linear_apply), init={"learning_rate": 1e-3}, steps=5)
  step = jmeta.make_meta_step(learner, optax.adam(0.2))
  state = step.init(jax.random.key(0), linear_params())
  tasks = linear_batch(n=4)
  _, m0 = step.update(state, tasks)
  for _ in range(10):
    state, m = step.update(state, tasks)
  assert float(hyperparams_of(state.meta_params)["learning_rate"]) > 5e-3
  assert float(m["query_loss"]) < float(m0["query_loss"])


def test_hypergradient_sgd_closed_form_on_a_quadratic():
  a, th0, lr0, beta = 2.0, 1.5, 0.1, 0.05
  tx = hypergradient_sgd(lr0, beta)
  th = {"t": jnp.asarray(th0)}
  state = tx.init(th)
  update = jax.jit(tx.update)
  for _ in range(3):
    u, state = update({"t": a * th["t"]}, state)
    th = optax.apply_updates(th, u)
  g0 = a * th0
  th1 = th0 - lr0 * g0
  g1 = a * th1
  lr2 = lr0 + beta * g1 * g0
  th2 = th1 - lr2 * g1
  g2 = a * th2
  lr3 = lr2 + beta * g2 * g1
  th3 = th2 - lr3 * g2
  np.testing.assert_allclose(th["t"], th3, rtol=1e-12)
  np.testing.assert_allclose(state.learning_rate, lr3, rtol=1e-12)


def test_bad_configuration_raises_clear_errors():
  loss = jmeta.mse_loss(linear_apply)
  with pytest.raises(ValueError, match=r"init\['learning_rate'\] must be a positive float"):
    learned_hyperparams(loss, init={"learning_rate": 0.0})
  with pytest.raises(ValueError, match="per_step names"):
    learned_hyperparams(loss, per_step=("momentum",))
  with pytest.raises(ValueError, match="does not accept the hyperparameters"):
    learned_hyperparams(loss, optax.sgd, init={"weight_decay": 0.1})
  with pytest.raises(ValueError, match="at least one"):
    learned_hyperparams(loss, init={})
  with pytest.raises(ValueError, match="per_step hyperparameters need steps >= 1"):
    learned_hyperparams(loss, per_step=("learning_rate",), steps=0)
  with pytest.raises(ValueError, match="hyper_lr must be non-negative"):
    hypergradient_sgd(0.1, -1.0)
  assert isinstance(sgd_with_weight_decay(0.1, 0.01), optax.GradientTransformation)
