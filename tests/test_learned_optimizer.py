"""Learned optimizers: meta-gradients, the optax transformation, truncation, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms import (learned_optimizer, learned_optimizer_transform,
                                                 mlp_optimizer)
from testing_utils import fingerprint, first_task, linear_apply, linear_batch, linear_params

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

  def seg_loss(o, p, s, n, first):
    ls = []
    for _ in range(n):
      value, g = jax.value_and_grad(loss)(p, x, y)
      ls.append(value)
      u, s = tx(o).update(g, s, p)
      p = optax.apply_updates(p, u)
    return sum(ls[1:] if first else ls), (p, s)

  @jax.jit
  def run(mp):
    out = {}
    for name, trunc in (("full", None), ("cut", 2), ("same", 4), ("ragged", 3)):
      learner = learned_optimizer(loss, lopt, steps=4, truncation=trunc)
      out[name] = jax.value_and_grad(learner.task_loss, has_aux=True)(mp, task)
    # The truncated gradient of mean(L1..L4) is (dL1 + dL3 + dL4) / 4 where the
    # second segment starts from the (constant) parameters and state where the
    # first ended (L0 and L2 are taken at constant points).
    o, p0 = mp["opt"], mp["params"]
    (_, (p2, s2)), g1 = jax.value_and_grad(seg_loss, has_aux=True)(o, p0, tx(o).init(p0), 2, True)
    g2 = jax.grad(lambda o: seg_loss(o, p2, s2, 2, False)[0])(o)
    g4 = jax.grad(lambda o: loss(seg_loss(o, p2, s2, 2, False)[1][0], x, y))(o)
    out["manual"] = jax.tree.map(lambda a, b, c: (a + b + c) / 4, g1, g2, g4)
    # Segments of 3 and 1 steps: (dL1 + dL2 + dL4) / 4, L3 at a constant point.
    (_, (p3, s3)), g12 = jax.value_and_grad(seg_loss, has_aux=True)(o, p0, tx(o).init(p0), 3, True)
    g4 = jax.grad(lambda o: loss(seg_loss(o, p3, s3, 1, False)[1][0], x, y))(o)
    out["manual_ragged"] = jax.tree.map(lambda a, b: (a + b) / 4, g12, g4)
    return out

  out = run({"params": linear_params(dim=2), "opt": op})
  (lf, _), gf = out["full"]
  for name in ("cut", "ragged"):
    np.testing.assert_allclose(out[name][0][0], lf, rtol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14), out["same"][1], gf)
  for name, manual in (("cut", "manual"), ("ragged", "manual_ragged")):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-13),
                 out[name][1]["opt"], out[manual])
    assert not np.allclose(jax.tree.leaves(out[name][1]["opt"])[0], jax.tree.leaves(gf["opt"])[0])


# The learned optimizer's own unroll before it became jmeta.inner_loop, computed at
# commit b742524 in float64 on the inputs of test_inner_loop_reproduces_the_old_unroll:
# adapted parameters, support losses, the task loss, the query loss and
# testing_utils.fingerprint of the meta-gradient. The 4-step runs share their values
# (first order and truncation change gradients only).
FOUR_STEPS = dict(
    params=[-0.10462813599307476, -0.6333279476221594, 0.40033348280496417],
    losses=[1.9307644858528794, 1.550791838110081, 1.2823354874755613, 1.0874512826301463,
            0.9387301989839028],
    loss=1.2148272017999229, query_loss=1.0671294410496073)
OLD_UNROLL = {
    "plain": dict(FOUR_STEPS, kwargs=dict(steps=4),
                  grad_opt=[1.3460921375954191, 4.116118564453874], grad_params=[0.0, 0.0]),
    "first_order": dict(FOUR_STEPS, kwargs=dict(steps=4, first_order=True),
                        grad_opt=[1.3867592885112496, 4.241129096687319], grad_params=[0.0, 0.0]),
    # remat changes memory, not numbers (the old unroll's remat=True gave these numbers too).
    "learn_init_truncation_remat": dict(
        FOUR_STEPS, kwargs=dict(steps=4, truncation=2, learn_init=True, remat="log"),
        grad_opt=[0.5429458098838706, 1.6407648081339172],
        grad_params=[0.10857295610720294, 0.7328951311244399]),
    "query_objective": dict(
        kwargs=dict(steps=3, objective="query"),
        params=[-0.07228963584583585, -0.6209153039333439, 0.4550697960037323],
        losses=[1.9307644858528794, 1.550791838110081, 1.2823354874755613, 1.0874512826301463],
        loss=1.235212498440524, query_loss=1.235212498440524,
        grad_opt=[1.813323620765774, 5.5110656701902725], grad_params=[0.0, 0.0]),
}


@pytest.mark.parametrize("name", sorted(OLD_UNROLL))
def test_inner_loop_reproduces_the_old_unroll(name):
  ref = OLD_UNROLL[name]
  lopt = mlp_optimizer(hidden=(3,), decays=(0.5, 0.9), time_scales=(3.0,), step_mult=0.1,
                       mag_mult=0.5)
  op = lopt.init(jax.random.key(0))
  op["layers"][-1]["w"] = op["layers"][-1]["w"] * 100.0
  task = first_task(linear_batch(n=1, dim=2))
  learner = learned_optimizer(jmeta.mse_loss(linear_apply), lopt, **ref["kwargs"])

  @jax.jit
  def run(mp):
    adapted = learner.adapt(mp, task.support_x, task.support_y)
    (loss, metrics), grad = jax.value_and_grad(learner.task_loss, has_aux=True)(mp, task)
    return adapted, loss, metrics, fingerprint(grad["opt"]), fingerprint(grad["params"])

  adapted, loss, metrics, grad_opt, grad_params = run({"params": linear_params(dim=2), "opt": op})
  tol = dict(rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(jnp.concatenate([jnp.ravel(l) for l in jax.tree.leaves(adapted.params)]),
                             ref["params"], **tol)
  np.testing.assert_allclose(adapted.losses, ref["losses"], **tol)
  np.testing.assert_allclose(loss, ref["loss"], **tol)
  np.testing.assert_allclose(metrics["query_loss"], ref["query_loss"], **tol)
  np.testing.assert_allclose(grad_opt, ref["grad_opt"], **tol)
  np.testing.assert_allclose(grad_params, ref["grad_params"], **tol)


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
  with pytest.raises(ValueError, match="truncation must be None or a positive int"):
    learned_optimizer(loss, steps=4, truncation=0)
  with pytest.raises(ValueError, match="remat must be False, True"):
    learned_optimizer(loss, steps=4, remat="binomial")
  with pytest.raises(ValueError, match="objective must be"):
    learned_optimizer(loss, objective="final")
  with pytest.raises(TypeError, match="optimizer must be a LearnedOptimizer"):
    learned_optimizer(loss, optax.adam(0.1))
  with pytest.raises(ValueError, match="truncation must be None or a positive int"):
    jmeta.inner_loop(loss, linear_params(), jnp.zeros((2, 3)), jnp.zeros((2, 1)), optax.sgd(0.1), 4,
                     truncation=2.0)
