"""Small models and tasks shared by the tests."""

import jax
import jax.numpy as jnp

import jmeta


def linear_apply(params, x):
  return x @ params["w"] + params["b"]


def linear_params(dim=3, dtype=jnp.float64):
  return {"w": jnp.linspace(-0.5, 0.7, dim, dtype=dtype).reshape(dim, 1),
          "b": jnp.asarray(0.1, dtype)}


def tiny_mlp(key=0, dtype=jnp.float64):
  model = jmeta.MLP(hidden=(8,), out=1)
  params = model.init(jax.random.key(key), jnp.zeros((1, 1)))
  params = jax.tree.map(lambda p: p.astype(dtype), params)
  return params, model.apply


def sinusoid_batch(n=4, shots=5, seed=0, dtype=jnp.float64):
  return jmeta.sinusoid(shots=shots, queries=shots, dtype=dtype).sample_batch(jax.random.key(seed), n)


def linear_batch(n=4, shots=6, dim=3, seed=0):
  return jmeta.linear_regression(shots=shots, queries=shots, dim=dim, dtype=jnp.float64).sample_batch(
      jax.random.key(seed), n)


def first_task(tasks):
  return jax.tree.map(lambda v: v[0], tasks)


def fingerprint(tree):
  """Two numbers that pin a pytree of arrays down: a fixed projection and the L2 norm."""
  flat = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves(tree)])
  weights = jnp.cos(0.7 * jnp.arange(flat.shape[0]) + 0.3)
  return jnp.stack([flat @ weights, jnp.sqrt(flat @ flat)])


def blobs_batch(n=4, ways=3, shots=2, queries=2, dim=2, seed=0, dtype=jnp.float64):
  """``n`` classification tasks: ``ways`` Gaussian blobs in ``dim`` dimensions, int labels."""
  def task(key):
    k_means, k_s, k_q = jax.random.split(key, 3)
    means = 2.0 * jax.random.normal(k_means, (ways, dim), dtype)

    def draw(k, per_class):
      y = jnp.repeat(jnp.arange(ways), per_class)
      return means[y] + 0.5 * jax.random.normal(k, (ways * per_class, dim), dtype), y

    (sx, sy), (qx, qy) = draw(k_s, shots), draw(k_q, queries)
    return jmeta.Task(sx, sy, qx, qy)
  return jax.vmap(task)(jax.random.split(jax.random.key(seed), n))
