"""Learned optimizers: meta-gradients, the optax transformation, truncation, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms._learned_optimizer import (learned_optimizer, learned_optimizer_transform,
                                                 mlp_optimizer, unroll)
from testing_utils import first_task, linear_apply, linear_batch, linear_params

CONFIG = dict(hidden=(6,), decays=(0.5, 0.9), time_scales=(3.0,), step_mult=0.1, mag_mult=0.5)


def _opt_params(seed=0):
  lopt = mlp_optimizer(**CONFIG)
  p = lopt.init(jax.random.key(seed))
  # A larger output layer than the default init, so the update is far from zero.
  p["layers"][-1]["w"] = p["layers"][-1]["w"] * 100.0
  return lopt, p


def _reference_update(opt_params, grads_seq, t):
  """Numpy re-implementation of the t-th update of one leaf (1-based)."""
  decays, rms_decay, eps = CONFIG["decays"], 0.99, 1e-8
  ms = [np.zeros_like(grads_seq[0]) for _ in decays]
  v = np.zeros_like(grads_seq[0])
  for g in grads_seq[:t]:
    ms = [d * m + (1 - d) * g for d, m in zip(decays, ms)]
    v = rms_decay * v + (1 - rms_decay) * g * g
  g = grads_seq[t - 1]

  def pre(x):
    big = np.abs(x) >= math.exp(-10)
    return (np.where(big, np.log(np.abs(x) + (~big)) / 10, -1.0),
            np.where(big, np.sign(x), math.exp(10) * x))

  raw = [g] + ms
  inv = 1 / np.sqrt(v / (1 - rms_decay ** t) + eps)
  feats = [f for x in raw for f in pre(x)] + [x * inv for x in raw]
  feats += [np.full(g.shape, np.tanh(t / s)) for s in CONFIG["time_scales"]]
  h = np.stack(feats, -1)
  layers = [jax.tree.map(np.asarray, l) for l in opt_params["layers"]]
  for l in layers[:-1]:
    h = np.maximum(h @ l["w"] + l["b"], 0)
  out = h @ layers[-1]["w"] + layers[-1]["b"]
  return CONFIG["step_mult"] * out[..., 0] * np.exp(CONFIG["mag_mult"] * out[..., 1])


def test_transform_matches_reference_and_jit():
  lopt, op = _opt_params()
  tx = learned_optimizer_transform(op, **CONFIG)
  rng = np.random.default_rng(0)
  grads_seq = [rng.normal(size=(3, 2)) * 10.0 ** rng.uniform(-6, 1, size=(3, 2)) for _ in range(3)]
  params = {"a": jnp.zeros((3, 2))}
  state = tx.init(params)
  jit_update = jax.jit(tx.update)
  for t, g in enumerate(grads_seq, start=1):
    u, state_next = tx.update({"a": jnp.asarray(g)}, state, params)
    uj, _ = jit_update({"a": jnp.asarray(g)}, state, params)
    np.testing.assert_allclose(u["a"], _reference_update(op, grads_seq, t), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(uj["a"], u["a"], rtol=1e-12, atol=1e-15)
    state = state_next
  assert int(state.count) == 3 and float(jnp.max(jnp.abs(u["a"]))) > 1e-3


def test_adapt_equals_optax_loop_with_the_transform():
  lopt, op = _opt_params()
  loss = jmeta.mse_loss(linear_apply)
  learner = learned_optimizer(loss, lopt, steps=4)
  mp = learner.init(jax.random.key(0), linear_params())
  mp["opt"] = op
  task = first_task(linear_batch())
  adapted = jax.jit(lambda m: learner.adapt(m, task.support_x, task.support_y))(mp)
  tx, p = lopt.transform(op), linear_params()
  state, losses = tx.init(p), []
  grad_fn, update = jax.jit(jax.value_and_grad(loss)), jax.jit(tx.update)
  for _ in range(4):
    value, g = grad_fn(p, task.support_x, task.support_y)
    losses.append(value)
    u, state = update(g, state, p)
    p = optax.apply_updates(p, u)
  losses.append(loss(p, task.support_x, task.support_y))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), adapted.params, p)
  np.testing.assert_allclose(adapted.losses, jnp.stack(losses), rtol=1e-10)


def test_meta_gradient_passes_check_grads():
  # Truncated gradients are biased on purpose: checked against a manual sum below.
  lopt, op = _opt_params()
  learner = learned_optimizer(jmeta.mse_loss(linear_apply), lopt, steps=2)
  task = first_task(linear_batch(dim=2))
  params = linear_params(dim=2)
  f = jax.jit(lambda o: learner.task_loss({"params": params, "opt": o}, task)[0])
  check_grads(f, (op,), order=1, modes=("rev",), eps=1e-6, rtol=1e-5, atol=1e-8)


def test_truncation_keeps_values_and_cuts_gradients():
  lopt, op = _opt_params()
  task = first_task(linear_batch(dim=2))
  x, y = task.support_x, task.support_y
  loss = jmeta.mse_loss(linear_apply)
  tx = lopt.transform

  def seg_loss(o, p, s, first):
    ls = []
    for _ in range(2):
      value, g = jax.value_and_grad(loss)(p, x, y)
      ls.append(value)
      u, s = tx(o).update(g, s, p)
      p = optax.apply_updates(p, u)
    return sum(ls[1:] if first else ls), (p, s)

  @jax.jit
  def run(mp):
    out = {}
    for name, trunc in (("full", None), ("cut", 2), ("same", 4)):
      learner = learned_optimizer(loss, lopt, steps=4, truncation=trunc)
      out[name] = jax.value_and_grad(learner.task_loss, has_aux=True)(mp, task)
    # The truncated gradient of mean(L1..L4) is (dL1 + dL3 + dL4) / 4 where the
    # second segment starts from the (constant) parameters and state where the
    # first ended (L0 and L2 are taken at constant points).
    o, p0 = mp["opt"], mp["params"]
    (_, (p2, s2)), g1 = jax.value_and_grad(seg_loss, has_aux=True)(o, p0, tx(o).init(p0), True)
    g2 = jax.grad(lambda o: seg_loss(o, p2, s2, False)[0])(o)
    g4 = jax.grad(lambda o: loss(seg_loss(o, p2, s2, False)[1][0], x, y))(o)
    out["manual"] = jax.tree.map(lambda a, b, c: (a + b + c) / 4, g1, g2, g4)
    return out

  out = run({"params": linear_params(dim=2), "opt": op})
  (lf, _), gf = out["full"]
  (lc, _), gc = out["cut"]
  np.testing.assert_allclose(lc, lf, rtol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14), out["same"][1], gf)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-13), gc["opt"], out["manual"])
  assert not np.allclose(jax.tree.leaves(gc["opt"])[0], jax.tree.leaves(gf["opt"])[0])


def test_meta_training_improves_and_init_is_fixed():
  params = linear_params(dim=3)
  learner = learned_optimizer(jmeta.mse_loss(linear_apply), mlp_optimizer(**CONFIG), steps=3)
  step = jmeta.make_meta_step(learner, optax.adam(3e-2))
  state = step.init(jax.random.key(0), params)
  tasks = linear_batch(n=8, dim=3)
  _, m0 = step.update(state, tasks)
  for _ in range(20):
    state, m = step.update(state, tasks)
  assert float(m["unroll_loss"]) < 0.5 * float(m0["unroll_loss"])
  jax.tree.map(np.testing.assert_array_equal, state.meta_params["params"], params)


def test_transform_is_the_inner_optimizer_of_maml():
  lopt, op = _opt_params()
  loss = jmeta.mse_loss(linear_apply)
  learner = jmeta.maml(loss, lopt.transform(op), steps=2)
  step = jmeta.make_meta_step(learner, optax.sgd(0.01))
  state, m = step.update(step.init(jax.random.key(0), linear_params()), linear_batch())
  assert m["finite"] == 1.0 and float(m["support_loss"]) != float(m["support_loss_before"])


def test_bad_configuration_raises_clear_errors():
  loss = jmeta.mse_loss(linear_apply)
  with pytest.raises(ValueError, match="decays must be"):
    mlp_optimizer(decays=(0.9, 1.5))
  with pytest.raises(ValueError, match="hidden must be"):
    mlp_optimizer(hidden=(0,))
  with pytest.raises(ValueError, match="step_mult and mag_mult must be positive"):
    mlp_optimizer(step_mult=0.0)
  _, op = _opt_params()
  with pytest.raises(ValueError, match="do not fit this optimizer"):
    learned_optimizer_transform(op, decays=(0.5, 0.9, 0.99))
  with pytest.raises(ValueError, match="opt_params must be"):
    learned_optimizer_transform({"w": jnp.zeros(3)})
  with pytest.raises(ValueError, match="truncation must be a positive int dividing steps=4"):
    learned_optimizer(loss, steps=4, truncation=3)
  with pytest.raises(ValueError, match="objective must be"):
    learned_optimizer(loss, objective="final")
  with pytest.raises(TypeError, match="optimizer must be a LearnedOptimizer"):
    learned_optimizer(loss, optax.adam(0.1))
  with pytest.raises(ValueError, match="truncation=3 must be a positive int dividing steps=4"):
    unroll(loss, linear_params(), jnp.zeros((2, 3)), jnp.zeros((2, 1)), optax.sgd(0.1), 4, truncation=3)
