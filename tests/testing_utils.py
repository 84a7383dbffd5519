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


def f64_conv_pool_gradient_error():
  """Relative error of the jit vs op-by-op float64 gradient of conv -> batch norm -> ReLU -> max-pool.

  The program that XLA:CPU (jaxlib >= 0.10.2) miscompiles without
  ``jmeta.models.XLA_F64_WORKAROUND``: 64 channels and a max-pool taken
  as a max over a reshaped window. About 1e-15 when compiled right, O(1) when
  not. Needs ``jax_enable_x64``.
  """
  from jmeta import models as _ops
  x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1), jnp.float64)
  params = {"k": 0.3 * jax.random.normal(jax.random.key(0), (3, 3, 1, 64), jnp.float64),
            "s": jnp.ones(64, jnp.float64), "o": jnp.zeros(64, jnp.float64)}
  w = jax.random.normal(jax.random.key(3), (2, 14, 14, 64), jnp.float64)

  def f(p):
    y = _ops.conv2d(x, p["k"], padding="SAME", impl="xla")
    y = jax.nn.relu(_ops.batch_stat_norm(y, p["s"], p["o"]))
    return jnp.sum(w * jnp.max(y.reshape(2, 14, 2, 14, 2, 64), axis=(2, 4)))

  with jax.disable_jit():
    eager = jax.grad(f)(params)
  jitted = jax.jit(jax.grad(f))(params)
  return max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
             for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)))
