"""ProtoNets, Matching Networks and R2-D2: closed forms, gradients, training through the meta-step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms import cosine_attention, ridge_solve
from jmeta.models import ConvBody

WAYS, SHOTS, QUERIES, DIM = 3, 2, 2, 6


def linear_embed(params, x):
  return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w"])


def episode(seed=0, n_tasks=None, shape=(5,), ways=WAYS, shots=SHOTS, queries=QUERIES):
  k1, k2 = jax.random.split(jax.random.key(seed))
  lead = () if n_tasks is None else (n_tasks,)
  sx = jax.random.normal(k1, lead + (ways * shots,) + shape, jnp.float64)
  qx = jax.random.normal(k2, lead + (ways * queries,) + shape, jnp.float64)
  sy = jnp.broadcast_to(jnp.repeat(jnp.arange(ways), shots), lead + (ways * shots,))
  qy = jnp.broadcast_to(jnp.repeat(jnp.arange(ways), queries), lead + (ways * queries,))
  return jmeta.Task(sx, sy, qx, qy)


def linear_params(seed=1, din=5, dout=DIM):
  return {"w": 0.5 * jax.random.normal(jax.random.key(seed), (din, dout), jnp.float64)}


def test_protonet_logits_are_negative_squared_distances_to_class_means():
  task, params = episode(), linear_params()
  learner = jmeta.algorithms.protonet(linear_embed, ways=WAYS)
  mp = learner.init(jax.random.key(0), params)
  logits = np.asarray(learner.predict(mp, task.support_x, task.support_y, task.query_x))
  # Hand computation with a Python loop over classes and queries.
  z = np.asarray(linear_embed(params, jnp.concatenate([task.support_x, task.query_x])))
  zs, zq = z[:WAYS * SHOTS], z[WAYS * SHOTS:]
  labels = np.asarray(task.support_y)
  means = [zs[labels == k].mean(axis=0) for k in range(WAYS)]
  expected = np.array([[-np.sum((q - m) ** 2) for m in means] for q in zq])
  np.testing.assert_allclose(logits, expected, rtol=1e-12)
  loss, metrics = learner.task_loss(mp, task)
  ce = -np.mean([expected[i, y] - np.log(np.sum(np.exp(expected[i])))
                 for i, y in enumerate(np.asarray(task.query_y))])
  np.testing.assert_allclose(loss, ce, rtol=1e-12)
  np.testing.assert_allclose(metrics["query_accuracy"],
                             np.mean(expected.argmax(1) == np.asarray(task.query_y)))


@pytest.mark.parametrize("n,d", [(4, 7), (9, 3)], ids=["woodbury", "primal"])
def test_ridge_solve_equals_the_primal_solve_and_has_correct_gradients(n, d):
  k1, k2 = jax.random.split(jax.random.key(n))
  z = jax.random.normal(k1, (n, d), jnp.float64)
  y = jax.random.normal(k2, (n, 3), jnp.float64)
  lam = jnp.asarray(0.7, jnp.float64)
  expected = jnp.linalg.solve(z.T @ z + lam * jnp.eye(d), z.T @ y)
  np.testing.assert_allclose(ridge_solve(z, y, lam), expected, rtol=1e-10, atol=1e-12)
  check_grads(jax.jit(ridge_solve), (z, y, lam), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("shots", [1, 4], ids=["woodbury", "primal"])  # n = 3 or 12 vs d = 6
def test_r2d2_meta_gradient_passes_check_grads(shots):
  task = episode(shots=shots)
  learner = jmeta.algorithms.r2d2(linear_embed, ways=WAYS, init_log_lambda=0.3, init_scale=2.0,
                                  init_bias=0.1)
  mp = learner.init(jax.random.key(0), linear_params())
  assert mp["head"]["log_lambda"].dtype == jnp.float64
  loss = jax.jit(lambda m: learner.task_loss(m, task)[0])
  check_grads(loss, (mp,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
  # The head's logits are scale * zq @ W + bias with W the ridge solution.
  z = linear_embed(mp["embed"], jnp.concatenate([task.support_x, task.query_x]))
  w = jnp.linalg.solve(z[:3 * shots].T @ z[:3 * shots] + jnp.exp(0.3) * jnp.eye(DIM),
                       z[:3 * shots].T @ jax.nn.one_hot(task.support_y, WAYS))
  np.testing.assert_allclose(learner.predict(mp, task.support_x, task.support_y, task.query_x),
                             2.0 * z[3 * shots:] @ w + 0.1, rtol=1e-9)


def test_matching_attention_sums_to_one_and_weights_support_labels():
  task, params = episode(), linear_params()
  zq = linear_embed(params, task.query_x)
  zs = linear_embed(params, task.support_x)
  att = cosine_attention(zq, zs)
  np.testing.assert_allclose(jnp.sum(att, axis=1), 1.0, rtol=1e-12)
  cos = np.array([[np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for b in zs] for a in zq])
  np.testing.assert_allclose(att, np.exp(cos) / np.exp(cos).sum(1, keepdims=True), rtol=1e-7)
  learner = jmeta.algorithms.matching_networks(linear_embed, ways=WAYS)
  mp = learner.init(jax.random.key(0), params)
  # Embedding support and query in one call equals embedding them apart (no normalisation here).
  logp = learner.predict(mp, task.support_x, task.support_y, task.query_x)
  np.testing.assert_allclose(jnp.exp(logp), att @ jax.nn.one_hot(task.support_y, WAYS), rtol=1e-9)


def test_bad_configuration_is_rejected():
  with pytest.raises(ValueError, match="ways must be an int >= 2"):
    jmeta.algorithms.protonet(linear_embed, ways=1)
  with pytest.raises(TypeError, match="embed must be callable"):
    jmeta.algorithms.r2d2(None, ways=3)
  with pytest.raises(ValueError, match="scale must be positive"):
    jmeta.algorithms.matching_networks(linear_embed, ways=3, scale=0.0)
  learner = jmeta.algorithms.protonet(linear_embed, ways=WAYS)
  mp = learner.init(jax.random.key(0), linear_params())
  task = episode()
  with pytest.raises(ValueError, match="labels must have shape"):
    learner.task_loss(mp, task._replace(support_y=task.support_y.reshape(-1, 1)))


FACTORIES = {
    "protonet": lambda embed: jmeta.algorithms.protonet(embed, ways=WAYS),
    "matching": lambda embed: jmeta.algorithms.matching_networks(embed, ways=WAYS, scale=5.0),
    "r2d2": lambda embed: jmeta.algorithms.r2d2(embed, ways=WAYS, init_scale=5.0),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_learner_trains_on_tiny_image_episodes(name):
  body = ConvBody(hidden=4, blocks=2)
  tasks = episode(seed=3, n_tasks=4, shape=(8, 8, 1))
  params = jax.tree.map(lambda p: p.astype(jnp.float64),
                        body.init(jax.random.key(0), tasks.support_x[0]))
  learner = FACTORIES[name](body.apply)
  step = jmeta.make_meta_step(learner, optax.adam(3e-2))
  state = step.init(jax.random.key(0), params)
  first, losses = None, []
  for _ in range(6):
    state, metrics = step.update(state, tasks)
    losses.append(float(metrics["query_loss"]))
    assert metrics["finite"] == 1.0 and 0.0 <= metrics["query_accuracy"] <= 1.0
  # Fitting one fixed batch of random images: the query loss must go down.
  assert losses[-1] < losses[0], losses
  assert int(state.step) == 6


def test_embedding_of_all_tasks_in_one_batch_equals_a_loop_over_tasks():
  # vmap over tasks with shared weights folds the task axis into the embedding's batch axis.
  learner = jmeta.algorithms.protonet(linear_embed, ways=WAYS)
  tasks = episode(seed=4, n_tasks=3)
  mp = learner.init(jax.random.key(0), linear_params())
  grad = jax.jit(learner.task_grad)
  vmapped, metrics = jax.jit(lambda m: jmeta.mean_over_tasks(lambda t: learner.task_grad(m, t),
                                                             tasks))(mp)
  looped = [grad(mp, jax.tree.map(lambda v: v[i], tasks))[0] for i in range(3)]
  jax.tree.map(lambda a, *b: np.testing.assert_allclose(a, sum(b) / 3, rtol=1e-10, atol=1e-12),
               vmapped, *looped)
  # evaluate() runs a metric learner with the usual metrics (steps are ignored).
  table = jmeta.evaluate(learner, mp, lambda k, n: tasks, jax.random.key(1), num_tasks=3,
                         steps=(0,), batch_size=3)
  np.testing.assert_allclose(table[0]["query_loss"][0], metrics["query_loss"], rtol=1e-10)
  assert set(table[0]) >= {"query_accuracy", "support_loss"}
