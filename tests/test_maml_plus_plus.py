"""MAML++: learned per-step rates, multi-step loss, derivative-order annealing, per-step norms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jmeta
from jmeta.algorithms import maml_plus_plus, multi_step_weights
from testing_utils import fingerprint, first_task, linear_batch, tiny_mlp


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


def tanh_apply(params, x):
  return jnp.tanh(x @ params["w1"]) @ params["w2"] + params["norm"]["b"]


def tanh_params():
  return {"w1": 0.5 * jnp.sin(jnp.arange(12.0)).reshape(3, 4),
          "w2": 0.4 * jnp.cos(jnp.arange(4.0)).reshape(4, 1),
          "norm": {"b": jnp.asarray(0.1)}}


# MAML++'s own unroll before it became jmeta.inner_loop, computed at commit b742524 in
# float64 on tanh_apply: testing_utils.fingerprint of the adapted parameters after the
# default steps and after 5, the support losses of both, the multi-step objective at
# meta-iteration `step` and with steps=1, the final query loss, and the meta-gradient's
# fingerprint (at each meta-iteration of `grad_steps`).
PER_STEP_3 = dict(  # the values of both 3-step runs with per-step norms (they differ in their gradients)
    params=[-0.8076622443336924, 1.9791673227182216],
    losses=[8.779612039146867, 7.029674472825406, 5.545264899473943, 3.4133634967448088],
    params5=[-1.9794028830900996, 2.319902513863514],
    losses5=[8.779612039146867, 7.029674472825406, 5.545264899473943, 3.4133634967448088,
             2.765156008032194, 2.480748456167669],
    loss_steps1=3.492816411349344, query_loss=3.5816905330885853)
OLD_UNROLL = {
    "multi_step": dict(
        PER_STEP_3, kwargs=dict(steps=3, init_lr=0.1, per_step=per_step, multi_step_steps=50), step=20,
        loss=3.5233713003759557, grad_steps=(20,), grads=[[4.742040314050486, 4.178672099707165]]),
    "order_annealing": dict(
        PER_STEP_3, kwargs=dict(steps=3, init_lr=0.1, per_step=per_step, first_order_steps=10), step=3,
        loss=3.5816905330885853, grad_steps=(3, 12), grads=[[-4.128185645665729, 8.981699425460933],
                                                            [6.548627927907728, 5.99580026181141]]),
    # remat changes memory, not numbers (the old unroll's remat=True gave these numbers too).
    "remat_no_per_step": dict(
        kwargs=dict(steps=2, init_lr=0.2, remat="sqrt", multi_step_steps=5), step=1,
        params=[-1.2714448134951049, 2.0278259192041883],
        losses=[8.779612039146867, 6.598721298685835, 3.2232563829917553],
        params5=[-4.071740288464359, 2.541512853351495],
        losses5=[8.779612039146867, 6.598721298685835, 3.2232563829917553, 2.323227029537924,
                 1.8159983308505767, 1.3587966725487723],
        loss=3.5234155388609576, loss_steps1=2.9245275283875167, query_loss=3.9226742125099183,
        grad_steps=(1,), grads=[[-0.8267227883590593, 5.021923820617904]]),
    "first_order": dict(
        kwargs=dict(steps=2, init_lr=0.2, per_step=per_step, first_order=True), step=0,
        params=[-1.0458995727000837, 2.033837815636024],
        losses=[8.779612039146867, 6.656549171081726, 3.314722216123622],
        params5=[-3.370269153027248, 2.4972323045634393],
        losses5=[8.779612039146867, 6.656549171081726, 3.314722216123622, 2.4736984134083793,
                 2.0967738987015347, 1.8135342777987313],
        loss=3.9910968964475937, loss_steps1=2.924806526337635, query_loss=3.9910968964475937,
        grad_steps=(0,), grads=[[-13.970951890868415, 10.20853051927913]]),
}


@pytest.mark.parametrize("name", sorted(OLD_UNROLL))
def test_inner_loop_reproduces_the_old_unroll(name):
  ref = OLD_UNROLL[name]
  learner = maml_plus_plus(jmeta.mse_loss(tanh_apply), **ref["kwargs"])
  mp = learner.init(jax.random.key(0), tanh_params())
  # Distinct per-step rates and norm copies.
  mp["lr"] = jax.tree.map(lambda l: l * (1.0 + 0.5 * jnp.arange(l.shape[0])), mp["lr"])
  if "per_step" in ref["kwargs"]:
    b = mp["params"]["norm"]["b"]
    mp["params"]["norm"]["b"] = b + 0.1 * jnp.arange(b.shape[0])
  task = first_task(linear_batch(n=1, dim=3))
  x, y, step = task.support_x, task.support_y, ref["step"]

  @jax.jit
  def run(mp):
    adapted, adapted5 = learner.adapt(mp, x, y), learner.adapt(mp, x, y, steps=5)
    loss, metrics = learner.task_loss(mp, task, step)
    loss1, _ = learner.task_loss(mp, task, step, steps=1)
    grads = [fingerprint(learner.task_grad(mp, task, s)[0]) for s in ref["grad_steps"]]
    return (fingerprint(adapted.params), adapted.losses, fingerprint(adapted5.params),
            adapted5.losses, loss, loss1, metrics["query_loss"], grads)

  got = run(mp)
  want = [ref[k] for k in ("params", "losses", "params5", "losses5", "loss", "loss_steps1",
                           "query_loss", "grads")]
  for g, w in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-15)
