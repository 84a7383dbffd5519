"""Bad input, table-driven: every row names the argument in its error, or is a named, recorded skip.

``BEFORE_TRACING``: errors raised by ``MetaStep.update``/``init``, ``jmeta.fit``
and ``jmeta.evaluate`` before anything is compiled: (id, call, exception type,
a regex the message must match, naming the argument and what was expected).

``IN_STEP``: inputs whose fault is in the values (labels, non-finite numbers),
checked inside the compiled step: the update must be skipped (meta-parameters
and optimizer state unchanged), ``metrics["bad_labels"]`` set as expected, and
with ``on_nonfinite="raise"`` the ``FloatingPointError`` names the cause.

``CLI`` rows are data for the command line (issue 14, scope 3).
"""

import functools
import math

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from testing_utils import sinusoid_batch, tiny_mlp

WAYS, SHOTS, DIM = 3, 2, 2


# --- tiny models, tasks and steps (cached: each step compiles once) ----------

def embed(params, x):
  return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w"])


def embed_params():
  return {"w": 0.5 * jax.random.normal(jax.random.key(1), (DIM, 4), jnp.float64)}


@functools.cache
def classifier():
  model = jmeta.MLP(hidden=(4,), out=WAYS)
  return model.init(jax.random.key(0), jnp.zeros((1, DIM), jnp.float64)), model.apply


def episodes(n=2, seed=0, ways=WAYS):
  k1, k2 = jax.random.split(jax.random.key(seed))
  sx = jax.random.normal(k1, (n, ways * SHOTS, DIM), jnp.float64)
  qx = jax.random.normal(k2, (n, ways * SHOTS, DIM), jnp.float64)
  y = jnp.broadcast_to(jnp.repeat(jnp.arange(ways), SHOTS), (n, ways * SHOTS))
  return jmeta.Task(sx, y, qx, y)


def binary_episodes(n=2):
  t = episodes(n)
  return t._replace(support_y=t.support_y % 2, query_y=t.query_y % 2)


def regression_maml(lr=0.05):
  params, apply = tiny_mlp()
  return jmeta.maml(jmeta.mse_loss(apply), optax.sgd(lr), steps=1), params


def regression_meta_sgd():
  params, apply = tiny_mlp()
  return jmeta.meta_sgd(jmeta.mse_loss(apply), steps=1, init_lr=0.05), params


LEARNERS = {
    "maml_mse": lambda: regression_maml(),
    "maml_mse_inner_lr_inf": lambda: regression_maml(math.inf),
    "maml_ce": lambda: (jmeta.maml(jmeta.cross_entropy_loss(classifier()[1]), optax.sgd(0.1), steps=1),
                        classifier()[0]),
    "meta_sgd_ce": lambda: (jmeta.meta_sgd(jmeta.cross_entropy_loss(classifier()[1]), steps=1),
                            classifier()[0]),
    "maml_bce": lambda: (jmeta.maml(jmeta.binary_cross_entropy_loss(
        jmeta.MLP(hidden=(4,), out=1).apply), optax.sgd(0.1), steps=1),
        jmeta.MLP(hidden=(4,), out=1).init(jax.random.key(0), jnp.zeros((1, DIM), jnp.float64))),
    "protonet": lambda: (jmeta.protonet(embed, ways=WAYS), embed_params()),
    "matching": lambda: (jmeta.matching_networks(embed, ways=WAYS), embed_params()),
    "r2d2": lambda: (jmeta.r2d2(embed, ways=WAYS), embed_params()),
}


def setup(learner="maml_mse", outer="adam", outer_lr=1e-2):
  """``(step, state)`` of a learner, one per arguments; the step has run ``init``."""
  return _setup(learner, outer, outer_lr)


@functools.cache
def _setup(learner, outer, outer_lr):
  lrn, params = LEARNERS[learner]()
  step = jmeta.make_meta_step(lrn, {"adam": optax.adam, "sgd": optax.sgd}[outer](outer_lr))
  return step, step.init(jax.random.key(0), params)


def fresh_step(learner="maml_mse", outer="adam"):
  """A step that never ran ``init`` (its state comes from elsewhere)."""
  lrn, _ = LEARNERS[learner]()
  return jmeta.make_meta_step(lrn, {"adam": optax.adam, "sgd": optax.sgd}[outer](1e-2))


def state_of(learner="maml_mse", outer="adam"):
  return setup(learner, outer)[1]


def update(learner="maml_mse", outer="adam", state=None, tasks=None):
  step, s0 = setup(learner, outer)
  return lambda: step.update(s0 if state is None else state(), sinusoid_batch(2) if tasks is None else tasks())


def one_task():
  return jmeta.sinusoid(shots=5, queries=5, dtype=jnp.float64).sample(jax.random.key(0))


def fit(step_state=("maml_mse", "adam"), state=None, sample=None, **kw):
  step, s0 = setup(*step_state)
  family = jmeta.sinusoid(shots=3, queries=3, dtype=jnp.float64)
  sample = family.sample_batch if sample is None else sample
  kw = dict(dict(key=jax.random.key(0), iterations=2, meta_batch=2, log_every=2), **kw)
  return lambda: list(jmeta.fit(step, s0 if state is None else state(), sample, **kw))


def evaluate(meta_params, sample=None, learner=None):
  lrn, params = regression_maml()
  family = jmeta.sinusoid(shots=3, queries=3, dtype=jnp.float64)
  sample = family.sample_batch if sample is None else sample
  return lambda: jmeta.evaluate(lrn if learner is None else learner, meta_params(params), sample,
                                jax.random.key(0), num_tasks=4, steps=(0, 1), batch_size=2)


def params_as(dtype):
  return jax.tree.map(lambda p: p.astype(dtype), tiny_mlp()[0])


def lists(tasks):
  return jmeta.Task(*(np.asarray(v).tolist() for v in tasks))


def init(params):
  return lambda: setup()[0].init(jax.random.key(0), params())


# --- errors before tracing -------------------------------------------------

BEFORE_TRACING = [
    # tasks: kind and shapes
    ("update_one_sinusoid_task", update(tasks=one_task), ValueError,
     r"tasks\.support_x needs shape \(tasks, examples, \*features\).*one task"),
    ("update_one_episode", update("protonet", tasks=lambda: jax.tree.map(lambda v: v[0], episodes())),
     ValueError, r"tasks\.support_x needs shape .*one task"),
    ("update_one_image_episode_labels", update(
        "protonet", tasks=lambda: episodes()._replace(support_y=episodes().support_y[0])),
     ValueError, r"tasks\.support_y needs shape \(tasks, examples, \*targets\).*one task"),
    ("update_rank_changed", lambda: (update()(), setup()[0].update(
        setup()[1], jax.tree.map(lambda v: v[..., None], sinusoid_batch(2)))),
     ValueError, r"tasks\.support_x and support_y have ranks 4 and 4 but this meta-step's first task batch had ranks 3 and 3"),
    ("update_tuple_not_task", update(tasks=lambda: tuple(sinusoid_batch(2))), TypeError,
     r"tasks must be a jmeta\.Task"),
    ("update_ragged_lists", update(tasks=lambda: lists(sinusoid_batch(2))._replace(
        support_x=[[[1.0]], [[1.0], [2.0]]])), TypeError, r"tasks\.support_x must be an array"),
    ("update_string_labels", update(tasks=lambda: sinusoid_batch(2)._replace(
        support_y=np.full((2, 5, 1), "a"))), TypeError, r"tasks\.support_y must hold numbers"),
    ("update_empty_batch", update(tasks=lambda: jax.tree.map(lambda v: v[:0], sinusoid_batch(2))),
     ValueError, r"tasks is empty"),
    ("update_feature_shapes_differ", update(tasks=lambda: sinusoid_batch(2)._replace(
        query_x=jnp.zeros((2, 5, 3)))), ValueError, r"tasks\.support_x has feature shape \(1,\), tasks\.query_x has \(3,\)"),
    ("update_targets_misaligned", update(tasks=lambda: sinusoid_batch(2)._replace(
        support_y=jnp.zeros((2, 4, 1)))), ValueError, r"targets must match inputs.*tasks\.support_x"),
    ("update_task_axis_differs", update(tasks=lambda: sinusoid_batch(2)._replace(
        query_y=sinusoid_batch(3).query_y)), ValueError,
     r"every field of tasks needs the same leading \(task\) axis; got .* query_y \(3, 5, 1\)"),
    # state: kind
    ("update_meta_params_as_state", update(state=lambda: state_of().meta_params), TypeError,
     r"state must be a jmeta\.MetaState from step\.init; got dict.*meta-parameters alone"),
    ("update_float_step_counter", update(state=lambda: state_of()._replace(step=jnp.zeros(()))),
     TypeError, r"state\.step must be an int32 scalar; got float64\[\]"),
    ("update_int_meta_params", lambda: fresh_step().update(
        jmeta.MetaState(params_as(jnp.int32), (), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)),
        sinusoid_batch(2)), TypeError, r"state\.meta_params\['params'\].* has dtype int32: expected a floating"),
    # state: another learner, another outer optimizer, other shapes or dtypes
    ("update_meta_sgd_state_into_maml", update(state=lambda: state_of("meta_sgd_ce")), ValueError,
     r"state\.meta_params does not match this step's.*\['lr'\]"),
    ("update_meta_sgd_state_into_fresh_maml", lambda: fresh_step().update(
        setup("meta_sgd_ce")[1], sinusoid_batch(2)), ValueError,
     r"state\.meta_params"),
    ("update_maml_state_into_meta_sgd", update("meta_sgd_ce", state=lambda: state_of("maml_ce"),
                                               tasks=episodes), ValueError,
     r"state\.meta_params does not match this step's"),
    ("update_maml_state_into_fresh_meta_sgd", lambda: fresh_step("meta_sgd_ce").update(
        state_of("maml_ce"), episodes()), ValueError, r"this step's learner cannot run on state\.meta_params"),
    ("update_sgd_state_into_adam", update(state=lambda: state_of(outer="sgd")), ValueError,
     r"state\.opt_state does not match this step's outer optimizer.*first missing leaf is \[0\]\.count"),
    ("update_adam_state_into_sgd", update(outer="sgd", state=lambda: state_of()), ValueError,
     r"state\.opt_state does not match this step's outer optimizer.*first extra leaf is \[0\]\.count"),
    ("update_adam_state_into_fresh_sgd", lambda: fresh_step(outer="sgd").update(state_of(), sinusoid_batch(2)),
     ValueError, r"state\.opt_state .*another outer optimizer"),
    ("update_float32_state_into_float64_step", update(state=lambda: fresh_step().init(
        jax.random.key(0), params_as(jnp.float32))), ValueError,
     r"state\.meta_params does not match this step's.*\['params'\]\['head'\]\['bias'\]: expected float64\[1\], got float32\[1\]"),
    ("update_other_model_shapes", update(state=lambda: fresh_step().init(jax.random.key(0), jax.tree.map(
        lambda p: p.astype(jnp.float64), jmeta.MLP(hidden=(5,), out=1).init(jax.random.key(0), jnp.zeros((1, 1)))))),
     ValueError, r"state\.meta_params does not match this step's.*\['params'\]\['head'\]\['kernel'\]: expected float64\[8,1\], got float64\[5,1\]"),
    # parameters at init
    ("init_int32_params", init(lambda: params_as(jnp.int32)), TypeError,
     r"params\['params'\]\['head'\]\['bias'\] has dtype int32: expected a floating dtype"),
    ("init_string_leaf", init(lambda: {"w": "zero"}), TypeError, r"params\['w'\] is of type str: expected a floating array"),
    ("init_python_int_leaf", init(lambda: {"w": 3}), TypeError, r"params\['w'\] is of type int: expected a floating array"),
    ("init_meta_state_as_params", init(lambda: state_of()), TypeError, r"params must be the model parameters.*MetaState"),
    ("init_empty_params", init(lambda: {}), ValueError, r"params has no array leaves"),
    # evaluate
    ("evaluate_whole_state", evaluate(lambda p: state_of()), TypeError,
     r"meta_params must be the meta-parameters \(state\.meta_params\); got the whole MetaState"),
    ("evaluate_int32_params", evaluate(lambda p: jax.tree.map(lambda v: v.astype(jnp.int32), p)), TypeError,
     r"meta_params\['params'\].* has dtype int32"),
    ("evaluate_one_task_sampler", evaluate(lambda p: p, sample=lambda k, n: one_task()), ValueError,
     r"sample_tasks\(key, 2\)\.support_x needs shape .*one task"),
    ("evaluate_not_a_learner", evaluate(lambda p: p, learner=optax.sgd(0.1)), TypeError,
     r"learner must be a jmeta\.MetaLearner"),
    ("evaluate_tuple_sampler", evaluate(lambda p: p, sample=lambda k, n: tuple(sinusoid_batch(2))), TypeError,
     r"sample_tasks\(key, 2\) must be a jmeta\.Task"),
    # fit
    ("fit_one_task_sampler", fit(sample=lambda k, n: one_task()), ValueError,
     r"sample_tasks\(key, 2\)\.support_x needs shape .*one task"),
    ("fit_sgd_state_into_adam", fit(state=lambda: state_of(outer="sgd")), ValueError,
     r"state\.opt_state does not match this step's outer optimizer"),
    ("fit_meta_sgd_state_into_maml", fit(state=lambda: state_of("meta_sgd_ce")), ValueError,
     r"state\.meta_params does not match"),
    ("fit_meta_params_as_state", fit(state=lambda: state_of().meta_params), TypeError, r"state must be a jmeta\.MetaState"),
    ("fit_not_a_step", lambda: list(jmeta.fit(setup()[0].learner, state_of(), sinusoid_batch,
                                              key=jax.random.key(0), iterations=1, meta_batch=2)),
     TypeError, r"step must be a jmeta\.MetaStep"),
    ("fit_bad_meta_batch", fit(meta_batch=0), ValueError, r"meta_batch >= 1"),
    # losses: label dtype (at trace time)
    ("ce_float_labels", update("maml_ce", tasks=lambda: episodes()._replace(
        support_y=episodes().support_y.astype(jnp.float64), query_y=episodes().query_y.astype(jnp.float64))),
     TypeError, r"labels must be integers in \[0, 3\); got dtype float64"),
]


@pytest.mark.parametrize("case", BEFORE_TRACING, ids=[c[0] for c in BEFORE_TRACING])
def test_error_before_tracing(case):
  _, call, exc, says = case
  with pytest.raises(exc, match=says):
    call()


def test_task_of_python_lists_is_converted():
  step, s0 = setup()
  tasks = sinusoid_batch(2)
  a = step.update(s0, lists(tasks))
  b = step.update(s0, tasks)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-12), a, b)


def test_state_checks_keep_valid_states():
  # the state update returns, a state of init of the same step, and a state made
  # by another step of the same learner and optimizer all pass
  step, s0 = setup()
  s1, _ = step.update(s0, sinusoid_batch(2))
  s2, _ = step.update(s1, sinusoid_batch(2, seed=1))
  other = fresh_step()
  s3, m = other.update(s2, sinusoid_batch(2, seed=2))
  # regression has no labels to check: no bad_labels metric (and no output for it)
  assert int(s3.step) == 3 and m["finite"] == 1.0 and "bad_labels" not in m


# --- values checked inside the compiled step ----------------------------------

def relabel(tasks_fn, field, index, value):
  def make():
    t = tasks_fn()
    return t._replace(**{field: getattr(t, field).at[index].set(value)})
  return make


def drop_class(tasks_fn, cls):
  """Support labels without class ``cls`` (its examples relabelled as the next class)."""
  def make():
    t = tasks_fn()
    return t._replace(support_y=jnp.where(t.support_y == cls, (cls + 1) % WAYS, t.support_y))
  return make


def nan_at(field, index):
  def make():
    t = sinusoid_batch(2)
    return t._replace(**{field: getattr(t, field).at[index].set(jnp.nan)})
  return make


BAD_LABELS = "bad labels"
IN_STEP = [
    # (id, learner, outer, outer_lr, tasks, bad_labels expected, cause in the raise message)
    ("protonet_query_label_minus_1", "protonet", 1e-2, relabel(episodes, "query_y", (0, 0), -1), 1.0, BAD_LABELS),
    ("protonet_query_label_ways", "protonet", 1e-2, relabel(episodes, "query_y", (1, 2), WAYS), 1.0, BAD_LABELS),
    ("protonet_support_label_ways", "protonet", 1e-2, relabel(episodes, "support_y", (0, 1), WAYS), 1.0, BAD_LABELS),
    ("protonet_class_without_support", "protonet", 1e-2, drop_class(episodes, 2), 1.0, BAD_LABELS),
    ("matching_support_label_minus_1", "matching", 1e-2, relabel(episodes, "support_y", (0, 0), -1), 1.0, BAD_LABELS),
    ("matching_class_without_support", "matching", 1e-2, drop_class(episodes, 0), 1.0, BAD_LABELS),
    ("r2d2_query_label_ways", "r2d2", 1e-2, relabel(episodes, "query_y", (0, 3), WAYS), 1.0, BAD_LABELS),
    ("r2d2_support_label_minus_2", "r2d2", 1e-2, relabel(episodes, "support_y", (1, 0), -2), 1.0, BAD_LABELS),
    ("maml_ce_query_label_classes", "maml_ce", 1e-2, relabel(episodes, "query_y", (0, 0), WAYS), 1.0, BAD_LABELS),
    ("maml_ce_support_label_minus_1", "maml_ce", 1e-2, relabel(episodes, "support_y", (1, 0), -1), 1.0, BAD_LABELS),
    ("meta_sgd_ce_support_label_classes", "meta_sgd_ce", 1e-2, relabel(episodes, "support_y", (0, 0), 7), 1.0,
     BAD_LABELS),
    ("maml_bce_query_label_2", "maml_bce", 1e-2, relabel(binary_episodes, "query_y", (0, 0), 2), 1.0, BAD_LABELS),
    ("maml_bce_support_label_minus_1", "maml_bce", 1e-2, relabel(binary_episodes, "support_y", (0, 1), -1), 1.0,
     BAD_LABELS),
    ("maml_inner_lr_inf", "maml_mse_inner_lr_inf", 1e-2, lambda: sinusoid_batch(2), 0.0,
     "non-finite support loss; non-finite query loss"),
    ("maml_outer_lr_inf", "maml_mse", math.inf, lambda: sinusoid_batch(2), 0.0,
     "non-finite updated meta-parameters"),
    ("maml_nan_query_target", "maml_mse", 1e-2, nan_at("query_y", (1, 0, 0)), 0.0, "non-finite query loss"),
    ("maml_nan_support_input", "maml_mse", 1e-2, nan_at("support_x", (0, 2, 0)), 0.0, "non-finite support loss"),
]


@pytest.mark.parametrize("case", IN_STEP, ids=[c[0] for c in IN_STEP])
def test_in_step_check_skips_the_update_and_names_the_cause(case):
  _, learner, outer_lr, tasks_fn, bad, cause = case
  outer = "sgd" if math.isinf(outer_lr) else "adam"
  step, s0 = setup(learner, outer, outer_lr=outer_lr)
  tasks = tasks_fn()
  s1, m = step.update(s0, tasks)
  assert float(m["finite"]) == 0.0 and float(m.get("bad_labels", 0.0)) == bad
  assert int(s1.step) == 1 and int(s1.skipped) == 1
  jax.tree.map(np.testing.assert_array_equal, (s1.meta_params, s1.opt_state), (s0.meta_params, s0.opt_state))
  raising = jmeta.make_meta_step(step.learner, {"adam": optax.adam, "sgd": optax.sgd}[outer](outer_lr),
                                 on_nonfinite="raise")
  with pytest.raises(FloatingPointError, match=r"non-finite meta-step 0: " + cause):
    raising.update(s0, tasks)


@pytest.mark.parametrize("learner", ["protonet", "maml_ce", "maml_bce"])
def test_valid_labels_pass_the_check(learner):
  step, s0 = setup(learner)
  s1, m = step.update(s0, binary_episodes() if learner == "maml_bce" else episodes())
  assert float(m["finite"]) == 1.0 and float(m["bad_labels"]) == 0.0
  assert any(float(jnp.max(jnp.abs(a - b))) > 0
             for a, b in zip(jax.tree.leaves(s1.meta_params), jax.tree.leaves(s0.meta_params)))


def bad_label_sampler(every=2):
  """Episodes whose query label is out of range at every ``every``-th step's draw."""
  base = episodes(2)

  def sample(key, n):
    del n
    bad = jax.random.bits(key, (), jnp.uint32) % every == 0
    return base._replace(query_y=base.query_y.at[0, 0].set(jnp.where(bad, WAYS, 0)))
  return sample


def test_fit_records_bad_label_steps():
  step, s0 = setup("protonet")
  sample = bad_label_sampler()
  key = jax.random.key(3)
  (s1, rec), = list(jmeta.fit(step, s0, sample, key=key, iterations=6, meta_batch=2, log_every=6))
  n_bad = sum(int(jax.random.bits(jax.random.fold_in(key, i), (), jnp.uint32) % 2 == 0) for i in range(6))
  assert 0 < n_bad < 6
  assert rec["bad_labels"] == n_bad and rec["nonfinite"] == n_bad and int(s1.skipped) == n_bad
  with pytest.raises(FloatingPointError, match=rf"\({n_bad} with bad labels\): bad labels"):
    list(jmeta.fit(step, s0, sample, key=key, iterations=6, meta_batch=2, log_every=6, on_nonfinite="raise"))


def test_fit_all_bad_labels_leaves_meta_params_unchanged():
  step, s0 = setup("protonet")
  (s1, rec), = list(jmeta.fit(step, s0, bad_label_sampler(every=1), key=jax.random.key(0),
                              iterations=3, meta_batch=2, log_every=3))
  assert rec["bad_labels"] == 3 and int(s1.skipped) == 3
  jax.tree.map(np.testing.assert_array_equal, s1.meta_params, s0.meta_params)


def test_evaluate_rejects_bad_labels():
  step, s0 = setup("protonet")
  with pytest.raises(ValueError, match=r"sample_tasks\(key, 2\) returned tasks with bad labels"):
    jmeta.evaluate(step.learner, s0.meta_params, bad_label_sampler(every=1), jax.random.key(0),
                   num_tasks=4, steps=(0,), batch_size=2)


# --- the command line (issue 14, scope 3: the lead's CLI rewrite plugs these in) --

CLI = [
    # (id, argv after "train", exit code, a regex the one-line message must match)
    ("meta_lr_inf", ["--meta-lr", "inf"], 2, r"--meta-lr"),
    ("meta_lr_nan", ["--meta-lr", "nan"], 2, r"--meta-lr"),
    ("inner_lr_inf", ["--inner-lr", "inf"], 2, r"--inner-lr"),
    ("inner_lr_nan", ["--inner-lr", "nan"], 2, r"--inner-lr"),
    ("clip_norm_inf", ["--clip-norm", "inf"], 2, r"--clip-norm"),
    ("time_budget_nan", ["--time-budget", "nan"], 2, r"--time-budget"),
    ("r2d2_init_scale_inf", ["--r2d2-init-scale", "inf"], 2, r"--r2d2-init-scale"),
    ("task_with_dataset", ["--dataset", "omniglot", "--task", "logistic"], 2, r"--task"),
]
CLI += [
    ("out_is_a_file", ["--out", "{file}"], 2, r"--out .* is a file"),
    ("data_dir_is_a_file", ["--dataset", "omniglot", "--algo", "protonet", "--data-dir", "{file}"],
     2, r"--data-dir .* is a file"),
    ("ways_on_synthetic", ["--ways", "5"], 2, r"--ways does not apply"),
    ("inner_lr_for_protonet", ["--dataset", "digits", "--algo", "protonet", "--inner-lr", "0.1"], 2,
     r"--inner-lr does not apply"),
    ("protonet_on_regression", ["--algo", "protonet"], 2, r"--algo protonet needs"),
    ("eval_steps_negative", ["--eval-steps", "-1"], 2, r"--eval-steps"),
]


@pytest.mark.parametrize("argv,code,pattern", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input(argv, code, pattern, tmp_path, capsys):
  from jmeta import cli
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  argv = [a.replace("{file}", str(a_file)) for a in argv]
  if "--out" not in argv:
    argv += ["--out", str(tmp_path / "run")]
  with pytest.raises(SystemExit) as e:
    cli.main(["train", "--iterations", "0", *argv])
  assert e.value.code == code
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) >= 1 and re.search(pattern, err[-1]), err
  assert not (tmp_path / "run" / "results.json").exists()
