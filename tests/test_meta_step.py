"""The meta-step: every learner through one conformance battery, the NaN guard, bad input."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from jmeta import gauss_newton, imaml, maml_plus_plus
from jmeta import algorithms
from testing_utils import blobs_batch, first_task, sinusoid_batch, tiny_mlp

LEARNERS = {
    "maml": lambda loss: jmeta.maml(loss, optax.sgd(0.05), steps=2),
    "fomaml": lambda loss: jmeta.fomaml(loss, optax.sgd(0.05), steps=2),
    "meta_sgd": lambda loss: jmeta.meta_sgd(loss, steps=1, init_lr=0.05),
    "anil": lambda loss: jmeta.anil(loss, optax.sgd(0.05), steps=2,
                                    adapt=lambda p: jmeta.path_mask(p, "head")),
    "reptile": lambda loss: jmeta.reptile(loss, optax.sgd(0.05), steps=3),
    "maml_adam": lambda loss: jmeta.maml(loss, optax.adam(0.01), steps=2),
    "maml_log_remat_second_order_window": lambda loss: jmeta.maml(
        loss, optax.sgd(0.05), steps=3, remat="log", second_order_steps=2),
    "maml_plus_plus": lambda loss: maml_plus_plus(loss, steps=2, init_lr=0.05, first_order_steps=1,
                                                  multi_step_steps=4),
    "imaml": lambda loss: imaml(loss, optax.sgd(0.02), steps=3, lam=10.0, cg_steps=10, cg_tol=1e-2),
    "maml_gauss_newton": lambda loss: jmeta.maml(
        loss, gauss_newton(tiny_mlp()[1], "mse", 0.5, damping=1.0, cg_steps=30), steps=1),
    "learned_optimizer": lambda loss: algorithms.learned_optimizer(
        loss, algorithms.mlp_optimizer(hidden=(4,), decays=(0.9,), time_scales=(10.0,)), steps=1),
    "learned_loss": lambda loss: algorithms.learned_loss(
        tiny_mlp()[1], loss, optax.sgd(0.05), steps=1, network=algorithms.loss_network(hidden=(4,))),
    "learned_hyperparams": lambda loss: algorithms.learned_hyperparams(
        loss, init={"learning_rate": 0.05}, per_step=("learning_rate",), steps=2),
}
# The metric learners get an embedding, not a loss; they see classification tasks.
METRIC_LEARNERS = {
    "protonet": lambda embed: jmeta.protonet(embed, ways=3),
    "matching_networks": lambda embed: jmeta.matching_networks(embed, ways=3),
    "r2d2": lambda embed: jmeta.r2d2(embed, ways=3),
}


class TraceCounter:
  def __init__(self, fn):
    self.fn, self.count = fn, 0
    self.apply_fn = getattr(fn, "apply_fn", None)  # the model a loss records, for predict

  def __call__(self, *args):
    self.count += 1
    return self.fn(*args)


def _setup(name):
  """The learner, its traced function, initial model parameters and two task batches."""
  if name in METRIC_LEARNERS:
    model = jmeta.MLP(hidden=(8,), out=4)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2), jnp.float64))
    traced = TraceCounter(model.apply)
    return METRIC_LEARNERS[name](traced), traced, params, blobs_batch(n=4), blobs_batch(n=4, seed=1)
  params, apply = tiny_mlp()
  traced = TraceCounter(jmeta.mse_loss(apply))
  return LEARNERS[name](traced), traced, params, sinusoid_batch(n=4), sinusoid_batch(n=4, seed=1)


@pytest.mark.parametrize("name", sorted(LEARNERS) + sorted(METRIC_LEARNERS))
def test_conformance(name):
  learner, traced, params, tasks, tasks2 = _setup(name)
  step = jmeta.make_meta_step(learner, optax.adam(1e-2))
  s0 = step.init(jax.random.key(0), params)

  # jit equals no jit, on the learner's per-task gradient (op by op is slow;
  # the meta-step around it is checked op by op in the next test)
  s_jit, m_jit = step.update(s0, tasks)
  one_task = jax.jit(learner.task_grad)
  task0 = jax.tree.map(lambda v: v[0], tasks)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
               one_task(s0.meta_params, task0),
               jax.disable_jit()(learner.task_grad)(s0.meta_params, task0))

  # a second call does not retrace / recompile
  count = traced.count
  s2, m2 = step.update(s_jit, tasks2)
  assert traced.count == count

  # stable state structure, shapes and dtypes
  assert jax.tree.structure(s2) == jax.tree.structure(s0)
  for a, b in zip(jax.tree.leaves(s2), jax.tree.leaves(s0)):
    assert a.shape == b.shape and a.dtype == b.dtype
  assert int(s2.step) == 2 and int(s2.skipped) == 0

  # finite, and the parameters moved
  assert all(np.isfinite(float(v)) for v in m2.values())
  assert m2["finite"] == 1.0 and m2["grad_norm"] > 0
  assert any(float(jnp.max(jnp.abs(a - b))) > 0
             for a, b in zip(jax.tree.leaves(s2.meta_params), jax.tree.leaves(s0.meta_params)))

  # vmap over tasks equals a Python loop over tasks
  directions = [one_task(s0.meta_params, jax.tree.map(lambda v: v[i], tasks))[0]
                for i in range(4)]
  loop_mean = jax.tree.map(lambda *g: sum(g) / 4, *directions)
  vmapped, _ = jax.jit(lambda ts: jmeta.mean_over_tasks(
      lambda t: learner.task_grad(s0.meta_params, t), ts, mode="vmap"))(tasks)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), vmapped, loop_mean)

  # same seed, same numbers
  s_again, m_again = step.update(step.init(jax.random.key(0), params), tasks)
  jax.tree.map(np.testing.assert_array_equal, (s_again, m_again), (s_jit, m_jit))

  # task_loss(..., steps=) and predict(meta_params, support_x, support_y, query_x, *, steps=)
  # with no other argument, one prediction per query (the metric learners: logits over 3 ways)
  assert list(inspect.signature(learner.predict).parameters) == [
      "meta_params", "support_x", "support_y", "query_x", "steps"]
  loss1, _ = jax.jit(learner.task_loss, static_argnames="steps")(s0.meta_params, task0, 0, steps=1)
  pred = jax.jit(learner.predict, static_argnames="steps")(
      s0.meta_params, task0.support_x, task0.support_y, task0.query_x, steps=1)
  assert np.isfinite(float(loss1)) and np.all(np.isfinite(pred))
  n_query = task0.query_x.shape[0]
  assert pred.shape == ((n_query, 3) if name in METRIC_LEARNERS else task0.query_y.shape)
  if name not in METRIC_LEARNERS:  # the model at the parameters adapt returns
    adapted = jax.jit(learner.adapt, static_argnames="steps")(
        s0.meta_params, task0.support_x, task0.support_y, steps=1).params
    np.testing.assert_allclose(pred, jax.jit(traced.apply_fn)(adapted, task0.query_x),
                               rtol=1e-10, atol=1e-12)


def test_predict_takes_the_model_at_construction():
  params, apply = tiny_mlp()
  task = first_task(sinusoid_batch())
  bare = lambda p, x, y: jnp.mean((apply(p, x) - y) ** 2)  # a loss that does not record its model
  with pytest.raises(ValueError, match=r"maml\(...\) has no model to predict with: pass apply_fn="):
    jmeta.maml(bare).predict(params, task.support_x, task.support_y, task.query_x)
  with pytest.raises(TypeError, match="apply_fn must be callable"):
    jmeta.maml(bare, apply_fn=3)
  learner = jmeta.maml(bare, optax.sgd(0.05), steps=2, apply_fn=apply)
  adapted = learner.adapt(params, task.support_x, task.support_y).params
  np.testing.assert_allclose(learner.predict(params, task.support_x, task.support_y, task.query_x),
                             apply(adapted, task.query_x), rtol=1e-12)


def test_meta_step_jit_equals_no_jit():
  # vmap over tasks, outer optimizer, NaN guard and metrics, op by op against jit
  params, apply = tiny_mlp()
  step = jmeta.make_meta_step(LEARNERS["maml"](jmeta.mse_loss(apply)), optax.adam(1e-2),
                              clip_norm=1.0)
  s0 = step.init(jax.random.key(0), params)
  pair = jax.tree.map(lambda v: v[:2], sinusoid_batch(n=4))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
               step.update(s0, pair), jax.disable_jit()(step.step_fn)(s0, pair))


@pytest.mark.parametrize("mode,chunk", [("scan", None), ("chunked", 2)])
def test_task_map_modes_agree_with_vmap(mode, chunk):
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
  tasks = sinusoid_batch(n=4)
  s0 = jmeta.make_meta_step(learner, optax.sgd(0.1)).init(jax.random.key(0), params)
  a, ma = jmeta.make_meta_step(learner, optax.sgd(0.1), task_map="vmap").update(s0, tasks)
  b, mb = jmeta.make_meta_step(learner, optax.sgd(0.1), task_map=mode, chunk_size=chunk).update(s0, tasks)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13), (a, ma), (b, mb))


def test_auto_task_map_scans_large_tasks_on_cpu_and_vmaps_small_ones():
  from jmeta import AUTO_SCAN_ELEMENTS, resolve_task_map
  small = sinusoid_batch(n=4)
  n_img = AUTO_SCAN_ELEMENTS // (2 * 28 * 28) + 1
  big = jmeta.Task(jnp.zeros((4, n_img, 28, 28)), jnp.zeros((4, n_img), jnp.int32),
                   jnp.zeros((4, n_img, 28, 28)), jnp.zeros((4, n_img), jnp.int32))
  assert resolve_task_map("auto", small) == "vmap"
  # the CPU scans large tasks; a GPU or TPU (benchmarks/gpu/run.py) always vmaps
  assert resolve_task_map("auto", big) == ("scan" if jax.default_backend() == "cpu" else "vmap")
  assert resolve_task_map("chunked", big) == "chunked"
  # the default is "auto", and it gives the numbers of the mode it resolves to
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=1)
  step = jmeta.make_meta_step(learner, optax.sgd(0.1))
  s0 = step.init(jax.random.key(0), params)
  a = step.update(s0, small)
  b = jmeta.make_meta_step(learner, optax.sgd(0.1), task_map="vmap").update(s0, small)
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("mode", ["vmap", "scan"])
def test_lean_metrics_same_update_less_work(mode):
  # metrics="lean": the same state, the full metrics less support_loss and the
  # *_before ones, and XLA drops the two forward passes they cost
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
  tasks = sinusoid_batch(n=4)
  full = jmeta.make_meta_step(learner, optax.adam(1e-2), task_map=mode)
  lean = jmeta.make_meta_step(learner, optax.adam(1e-2), task_map=mode, metrics="lean")
  s0 = full.init(jax.random.key(0), params)
  (a, ma), (b, mb) = full.update(s0, tasks), lean.update(s0, tasks)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert set(ma) - set(mb) == {"support_loss", "query_loss_before"} and set(mb) <= set(ma)
  for k in mb:
    np.testing.assert_array_equal(ma[k], mb[k])

  def flops(step):
    ca = jax.jit(step.step_fn).lower(s0, tasks).compile().cost_analysis()
    return (ca[0] if isinstance(ca, (list, tuple)) else ca)["flops"]

  # vmap: both passes gone (one support and one query forward of the 1-8-1 MLP
  # per task: 2 passes x 4 tasks x 5 points x 2 x (8 + 8) flops of the two
  # matmuls at least)
  if mode == "vmap":
    assert flops(full) - flops(lean) >= 2 * 4 * 5 * 2 * 16
  # a lean step meets the guard as the full one does
  bad = tasks._replace(query_y=tasks.query_y.at[1, 0, 0].set(jnp.nan))
  s1, m1 = lean.update(s0, bad)
  assert m1["finite"] == 0.0 and int(s1.skipped) == 1
  with pytest.raises(ValueError, match="metrics must be one of"):
    jmeta.make_meta_step(learner, optax.adam(1e-2), metrics="none")


def test_donate_same_states_consumes_the_state_only():
  # donate=True: bit-identical states to the default step, the donated state is
  # consumed (its arrays deleted, a clear error if passed again), the caller's
  # params are not, and a raised non-finite step hands back the unchanged state
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
  tasks = [sinusoid_batch(n=4, seed=s) for s in range(3)]
  plain = jmeta.make_meta_step(learner, optax.adam(1e-2), metrics="lean")
  donated = jmeta.make_meta_step(learner, optax.adam(1e-2), metrics="lean", donate=True)
  a, b = plain.init(jax.random.key(0), params), donated.init(jax.random.key(0), params)
  first = b
  for t in tasks:
    (a, ma), (b, mb) = plain.update(a, t), donated.update(b, t)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    jax.tree.map(np.testing.assert_array_equal, ma, mb)
  assert all(l.is_deleted() for l in jax.tree.leaves(first))
  assert not any(l.is_deleted() for l in jax.tree.leaves(params))  # init copied them
  with pytest.raises(ValueError, match="state was consumed by an earlier update"):
    donated.update(first, tasks[0])

  raising = jmeta.make_meta_step(learner, optax.adam(1e-2), donate=True, on_nonfinite="raise")
  s = raising.init(jax.random.key(0), params)
  s, _ = raising.update(s, tasks[0])
  before = jax.tree.map(np.asarray, s)
  bad = tasks[1]._replace(query_y=tasks[1].query_y.at[0, 0, 0].set(jnp.nan))
  with pytest.raises(FloatingPointError, match="meta-step 1: ") as err:
    raising.update(s, bad)
  kept = err.value.state
  jax.tree.map(np.testing.assert_array_equal, before.meta_params, kept.meta_params)
  assert int(kept.step) == 2 and int(kept.skipped) == 1
  s2, m = raising.update(kept, tasks[2])  # the handed-back state trains on
  assert m["finite"] == 1.0 and int(s2.step) == 3
  with pytest.raises(TypeError, match="donate must be True or False"):
    jmeta.make_meta_step(learner, optax.adam(1e-2), donate="yes")


def test_clip_norm_clips_the_meta_gradient():
  params, apply = tiny_mlp()
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=1)
  tasks = sinusoid_batch(n=4)
  plain = jmeta.make_meta_step(learner, optax.sgd(1.0))
  clipped = jmeta.make_meta_step(learner, optax.sgd(1.0), clip_norm=1e-3)
  s0 = plain.init(jax.random.key(0), params)
  s1, m = clipped.update(s0, tasks)
  moved = jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(s1.meta_params),
                                                             jax.tree.leaves(s0.meta_params))))
  assert m["grad_norm"] > 1e-2
  np.testing.assert_allclose(moved, 1e-3, rtol=1e-6)


def _nan_tasks():
  tasks = sinusoid_batch(n=4)
  return tasks._replace(query_y=tasks.query_y.at[1, 0, 0].set(jnp.nan))


def test_nonfinite_meta_loss_is_skipped_and_reported():
  params, apply = tiny_mlp()
  step = jmeta.make_meta_step(jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05)), optax.adam(1e-2))
  s0 = step.init(jax.random.key(0), params)
  s1, m = step.update(s0, _nan_tasks())
  assert m["finite"] == 0.0 and int(s1.skipped) == 1 and int(s1.step) == 1
  jax.tree.map(np.testing.assert_array_equal, (s1.meta_params, s1.opt_state), (s0.meta_params, s0.opt_state))
  s2, m2 = step.update(s1, sinusoid_batch(n=4))
  assert m2["finite"] == 1.0 and int(s2.skipped) == 1


def test_nonfinite_meta_loss_raises_when_asked():
  params, apply = tiny_mlp()
  step = jmeta.make_meta_step(jmeta.maml(jmeta.mse_loss(apply)), optax.adam(1e-2), on_nonfinite="raise")
  with pytest.raises(FloatingPointError, match="non-finite meta-step 0"):
    step.update(step.init(jax.random.key(0), params), _nan_tasks())


def test_bad_input_raises_clear_errors():
  params, apply = tiny_mlp()
  loss = jmeta.mse_loss(apply)
  step = jmeta.make_meta_step(jmeta.maml(loss), optax.sgd(0.1))
  state = step.init(jax.random.key(0), params)
  tasks = sinusoid_batch(n=2)
  with pytest.raises(ValueError, match="support and query features differ"):
    step.update(state, tasks._replace(query_x=jnp.zeros((2, 5, 3)), query_y=jnp.zeros((2, 5, 1))))
  with pytest.raises(ValueError, match="empty"):
    step.update(state, jax.tree.map(lambda v: v[:0], tasks))
  with pytest.raises(ValueError, match="leading"):
    step.update(state, tasks._replace(query_y=tasks.query_y[:1]))
  with pytest.raises(TypeError, match="jmeta.Task"):
    step.update(state, tuple(tasks))
  with pytest.raises(ValueError, match="steps must be a non-negative int"):
    jmeta.maml(loss, steps=-1)
  with pytest.raises(ValueError, match="mask selects no parameter"):
    jmeta.anil(loss, adapt=lambda p: jax.tree.map(lambda _: False, p)).adapt(
        params, tasks.support_x[0], tasks.support_y[0])
  with pytest.raises(TypeError, match="inner_opt must be an optax"):
    jmeta.maml(loss, inner_opt=0.01)
  with pytest.raises(ValueError, match="task_map must be one of"):
    jmeta.make_meta_step(jmeta.maml(loss), optax.sgd(0.1), task_map="pmap")
  with pytest.raises(ValueError, match="chunk_size=3 must divide"):
    jmeta.make_meta_step(jmeta.maml(loss), optax.sgd(0.1), task_map="chunked", chunk_size=3).update(state, tasks)
  with pytest.raises(ValueError, match="on_nonfinite"):
    jmeta.make_meta_step(jmeta.maml(loss), optax.sgd(0.1), on_nonfinite="ignore")


def test_flax_nnx_adapter():
  from flax import nnx

  class Net(nnx.Module):
    def __init__(self, rngs):
      self.l1 = nnx.Linear(1, 8, rngs=rngs, param_dtype=jnp.float64)
      self.l2 = nnx.Linear(8, 1, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
      return self.l2(jax.nn.relu(self.l1(x)))

  net = Net(nnx.Rngs(0))
  params, apply = jmeta.from_nnx(net)
  task = first_task(sinusoid_batch())
  np.testing.assert_allclose(apply(params, task.support_x), net(task.support_x), rtol=1e-12)
  learner = jmeta.maml(jmeta.mse_loss(apply), optax.sgd(0.05), steps=2)
  step = jmeta.make_meta_step(learner, optax.sgd(0.1))
  s, m = step.update(step.init(jax.random.key(0), params), sinusoid_batch())
  assert m["query_loss"] < m["query_loss_before"] or m["grad_norm"] > 0
  assert jax.tree.structure(s.meta_params) == jax.tree.structure(params)
