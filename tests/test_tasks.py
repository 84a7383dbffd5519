"""Synthetic task families and evaluation statistics."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta


def test_sinusoid_follows_finn_et_al():
  fam = jmeta.sinusoid(shots=10, queries=7)
  keys = jax.random.split(jax.random.key(0), 2000)
  params = jax.vmap(fam.sample_params)(keys)
  a, p = np.asarray(params["amplitude"]), np.asarray(params["phase"])
  assert 0.1 <= a.min() and a.max() <= 5.0 and abs(a.mean() - 2.55) < 0.1
  assert 0.0 <= p.min() and p.max() <= math.pi and abs(p.mean() - math.pi / 2) < 0.1
  tasks = fam.sample_batch(jax.random.key(1), 3)
  assert tasks.support_x.shape == (3, 10, 1) and tasks.query_x.shape == (3, 7, 1)
  assert float(jnp.min(tasks.support_x)) >= -5 and float(jnp.max(tasks.support_x)) <= 5
  k_params, k_data = jax.random.split(jax.random.key(1))
  one = fam.sample(jax.random.key(5))
  kp, _ = jax.random.split(jax.random.key(5))
  pr = fam.sample_params(kp)
  np.testing.assert_allclose(one.support_y, pr["amplitude"] * jnp.sin(one.support_x - pr["phase"]), rtol=1e-6)
  # same key, same task; different key, different task
  np.testing.assert_array_equal(fam.sample(jax.random.key(5)).query_y, one.query_y)
  assert not np.allclose(fam.sample(jax.random.key(6)).query_y, one.query_y)


def test_linear_and_logistic_families():
  lin = jmeta.linear_regression(shots=4, queries=6, dim=3, dtype=jnp.float64)
  t = lin.sample(jax.random.key(0))
  kp, _ = jax.random.split(jax.random.key(0))
  pr = lin.sample_params(kp)
  np.testing.assert_allclose(t.query_y, t.query_x @ pr["w"] + pr["b"], rtol=1e-12)
  log = jmeta.logistic_regression(shots=200, queries=10, dim=2, scale=50.0)
  t = log.sample(jax.random.key(1))
  kp, _ = jax.random.split(jax.random.key(1))
  pr = log.sample_params(kp)
  assert t.support_y.dtype == jnp.int32 and set(np.unique(t.support_y)) <= {0, 1}
  agree = np.mean((np.asarray(t.support_x @ pr["w"] + pr["b"]) > 0) == np.asarray(t.support_y))
  assert agree > 0.9


def test_family_bad_arguments():
  with pytest.raises(ValueError, match="shots must be a positive int"):
    jmeta.sinusoid(shots=0)
  with pytest.raises(ValueError, match="dim must be a positive int"):
    jmeta.linear_regression(dim=0)
  with pytest.raises(ValueError, match="number of tasks"):
    jmeta.sinusoid().sample_batch(jax.random.key(0), 0)


def test_mean_ci95_matches_hand_computation():
  v = np.array([1.0, 2.0, 3.0, 4.0])
  m, h = jmeta.mean_ci95(v)
  assert m == 2.5
  np.testing.assert_allclose(h, 1.96 * np.std(v, ddof=1) / 2.0)


def test_evaluate_reports_steps_and_improves_with_adaptation():
  model = jmeta.MLP(hidden=(16,))
  params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.key(0), jnp.zeros((1, 3))))
  fam = jmeta.linear_regression(shots=10, queries=10, dim=3, dtype=jnp.float64)
  learner = jmeta.maml(jmeta.mse_loss(model.apply), optax.sgd(0.05), steps=1)
  res = jmeta.evaluate(learner, params, fam.sample_batch, jax.random.key(1), num_tasks=50,
                       steps=(0, 1, 5), batch_size=20)
  assert set(res) == {0, 1, 5}
  losses = [res[s]["query_loss"][0] for s in (0, 1, 5)]
  assert losses[2] < losses[1] < losses[0]
  # the 0-step figure is the plain query loss of the initialisation on the same tasks
  keys = jax.random.split(jax.random.key(1), 3)
  tasks = [fam.sample_batch(k, 20) for k in keys]
  qx = jnp.concatenate([t.query_x for t in tasks])[:50]
  qy = jnp.concatenate([t.query_y for t in tasks])[:50]
  per_task = jax.vmap(lambda x, y: jmeta.mse_loss(model.apply)(params, x, y))(qx, qy)
  np.testing.assert_allclose(res[0]["query_loss"][0], float(jnp.mean(per_task)), rtol=1e-9)
