"""Writes the tutorial notebooks (``python notebooks/_make.py``), with no outputs.

The notebooks are authored here as lists of markdown and code cells so that
they stay reviewable as Python and are committed without stale outputs. Each
starts with a Colab badge and a setup cell that installs jmeta on Colab and
reads ``JMETA_SMALL`` (``JMETA_SMALL=1``: tiny settings, what CI runs).
``tests/test_notebooks.py`` executes them and checks that the committed files
are what this script writes.
"""

from __future__ import annotations

import os
import sys
import textwrap

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = "jmeta-dev/jmeta"  # The GitHub home is not decided yet; change it here and regenerate.
INSTALL = f"jmeta @ git+https://github.com/{REPO}"


def badge_url(name: str) -> str:
  """The Colab URL of notebook ``name`` (without ``.ipynb``)."""
  return f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{name}.ipynb"


def badge(name: str) -> str:
  """The markdown of the 'Open in Colab' badge of notebook ``name``."""
  return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"({badge_url(name)})")


def _md(text: str):
  return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def _code(text: str):
  return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


def setup_cell(extra: str = "") -> nbformat.NotebookNode:
  """The first code cell: install on Colab, read the small-settings switch."""
  return _code(f'''
      # Setup. On Colab this installs jmeta (a CPU runtime is enough; a GPU one is faster).
      # JMETA_SMALL=1 shrinks every setting to a smoke test: that is how CI runs this notebook.
      import os, sys
      if "google.colab" in sys.modules:
          %pip install -q "{INSTALL}"{extra}
      SMALL = os.environ.get("JMETA_SMALL", "0") == "1"
      print("small settings (CI)" if SMALL else "full settings")
  ''')


def nb_01():
  name = "01_maml_sinusoid"
  cells = [
      _md(f"""
      {badge(name)}

      # MAML on sinusoid regression

      Model-Agnostic Meta-Learning (Finn, Abbeel and Levine, ICML 2017) learns an *initialisation* from
      which a few gradient steps on a handful of examples fit a new task. The classic toy problem: every task
      is a sinusoid `y = A sin(x - phi)` with a random amplitude and phase, and the learner sees only 10
      points of it.

      This notebook meta-trains MAML with jmeta in about twenty lines, shows the adaptation to a new
      sinusoid, plots the error against the number of adaptation steps, and compares MAML with first-order
      MAML and Meta-SGD. With the default settings it runs in a few minutes on a CPU runtime.
      """),
      setup_cell(),
      _md("""
      ## Settings

      `SMALL` (set by `JMETA_SMALL=1`) is for continuous integration only: it trains for a handful of
      steps, so its pictures show an untrained model.
      """),
      _code("""
      ITERATIONS = 20 if SMALL else 10_000   # meta-steps per learner
      META_BATCH = 4 if SMALL else 25        # tasks per meta-step
      LOG_EVERY = 20 if SMALL else 1_000     # meta-steps per compiled block (and per log line)
      EVAL_TASKS = 10 if SMALL else 1_000    # held-out tasks for the meta-test
      """),
      _md("""
      ## MAML in twenty lines

      The pieces are plain functions over pytrees:

      * a **task family** samples tasks: `family.sample_batch(key, n)` returns a `jmeta.Task` with
        `support_x, support_y` (the 10 points the learner sees) and `query_x, query_y` (where it is judged),
        each with a leading task axis;
      * a **model** is any `apply(params, x)`; here the 1-40-40-1 ReLU network of the paper (flax linen);
      * a **loss** `loss_fn(params, x, y)`;
      * a **meta-learner** `jmeta.maml(loss_fn, inner_opt, steps=1)`: its inner loop is one SGD step with
        learning rate 0.01 on the support set, and its meta-gradient flows through that step (second order);
      * a **meta-step** `jmeta.make_meta_step(learner, outer_opt)`: the task batch is `vmap`ped, the
        meta-gradients averaged and Adam updates the initialisation, all in one `jit`-compiled program;
      * `jmeta.fit` runs blocks of meta-steps inside one compiled `lax.scan`, sampling tasks on device.
      """),
      _code("""
      import time
      import jax
      import jax.numpy as jnp
      import matplotlib.pyplot as plt
      import numpy as np
      import optax
      import jmeta

      family = jmeta.sinusoid(shots=10, queries=10)
      model = jmeta.MLP()  # 1-40-40-1 ReLU
      params = model.init(jax.random.key(0), jnp.zeros((1, 1)))
      loss_fn = jmeta.mse_loss(model.apply)

      maml = jmeta.maml(loss_fn, optax.sgd(0.01), steps=1)
      meta_step = jmeta.make_meta_step(maml, optax.adam(1e-3))
      state = meta_step.init(jax.random.key(1), params)

      t0, history = time.time(), []
      for state, record in jmeta.fit(meta_step, state, family.sample_batch, key=jax.random.key(2),
                                     iterations=ITERATIONS, meta_batch=META_BATCH, log_every=LOG_EVERY):
          history.append(record)
          print(f"step {record['step']:>6}  query MSE before adaptation {record['query_loss_before']:.3f}"
                f"  after {record['query_loss']:.3f}")
      print(f"{ITERATIONS} meta-steps in {time.time() - t0:.1f} s (first block includes compilation)")
      """),
      _md("""
      ## Adapting to a new sinusoid

      `learner.adapt(meta_params, x, y, steps=k)` runs the inner loop for `k` steps (any `k`, not only the
      one used in training). Below: the true curve of a held-out task, its 10 support points, the network
      at the meta-learned initialisation, and after 1 and 10 gradient steps on the support points.
      """),
      _code("""
      SHOWN_STEPS = (0, 1, 10)

      @jax.jit  # one compiled program for the three adaptations
      def predictions(meta_params, task, xs):
          return [model.apply(maml.adapt(meta_params, task.support_x, task.support_y, steps=k).params, xs)
                  for k in SHOWN_STEPS]

      xs = jnp.linspace(-5.0, 5.0, 200)[:, None]
      fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
      for i, ax in enumerate(axes):
          k_params, k_data = jax.random.split(jax.random.key(100 + i))
          task_params = family.sample_params(k_params)  # amplitude and phase of a held-out task
          task = family.make_task(k_data, task_params)
          ax.plot(xs[:, 0], family.target_fn(task_params, xs)[:, 0], color="red", label="true curve")
          for k, pred, style in zip(SHOWN_STEPS, predictions(state.meta_params, task, xs), (":", "--", "-")):
              ax.plot(xs[:, 0], pred[:, 0], style, color="tab:green",
                      label="meta-learned init" if k == 0 else f"after {k} step{'s' * (k > 1)}")
          ax.scatter(task.support_x[:, 0], task.support_y[:, 0], marker="^", color="purple", zorder=5,
                     label="10 support points")
          ax.set_title(f"held-out task {i + 1}"); ax.set_xlabel("x")
      axes[0].legend(fontsize=8)
      plt.show()
      """),
      _md("""
      ## Error against adaptation steps

      `jmeta.evaluate` meta-tests on held-out tasks (each number of steps sees the same tasks) and returns the
      mean and the half-width of a 95% confidence interval. The query sets here have 100 points so that the
      per-task error is precise.
      """),
      _code("""
      STEPS = (0, 1, 10) if SMALL else (0, 1, 2, 5, 10)  # fewer programs to compile in CI
      test_family = jmeta.sinusoid(shots=10, queries=100)

      def meta_test(learner, meta_params):
          return jmeta.evaluate(learner, meta_params, test_family.sample_batch, jax.random.key(3),
                                num_tasks=EVAL_TASKS, steps=STEPS, batch_size=min(EVAL_TASKS, 250))

      table = meta_test(maml, state.meta_params)
      for s in STEPS:
          mean, ci = table[s]["query_loss"]
          print(f"{s:>2} steps: MSE {mean:.3f} +/- {ci:.3f}")
      plt.figure(figsize=(5, 3.5))
      plt.errorbar(STEPS, [table[s]["query_loss"][0] for s in STEPS],
                   yerr=[table[s]["query_loss"][1] for s in STEPS], marker="o", capsize=3)
      plt.xlabel("adaptation steps"); plt.ylabel("query MSE (95% CI)"); plt.title("MAML, meta-test")
      plt.show()
      """),
      _md("""
      ## MAML, first-order MAML and Meta-SGD

      * **FOMAML** drops the second-order terms: the meta-gradient is the query-loss gradient at the adapted
        parameters (`first_order=True` is a `stop_gradient` on the inner gradients). It is cheaper per step.
      * **Meta-SGD** (Li et al., 2017) also meta-learns a learning rate for every parameter: its
        meta-parameters are `{"params": ..., "lr": ...}`.

      Each is trained with the same budget, from the same initial network and on the same task stream.
      """),
      _code("""
      learners = {
          "MAML": maml,
          "FOMAML": jmeta.fomaml(loss_fn, optax.sgd(0.01), steps=1),
          "Meta-SGD": jmeta.meta_sgd(loss_fn, steps=1, init_lr=0.01),
      }
      trained = {"MAML": state.meta_params}
      curves = {"MAML": history}
      for name in ("FOMAML", "Meta-SGD"):
          step_ = jmeta.make_meta_step(learners[name], optax.adam(1e-3))
          s = step_.init(jax.random.key(1), params)
          t0, curves[name] = time.time(), []
          for s, record in jmeta.fit(step_, s, family.sample_batch, key=jax.random.key(2),
                                     iterations=ITERATIONS, meta_batch=META_BATCH, log_every=LOG_EVERY):
              curves[name].append(record)
          trained[name] = s.meta_params
          print(f"{name}: {ITERATIONS} meta-steps in {time.time() - t0:.1f} s")

      tables = {name: meta_test(learners[name], trained[name]) for name in learners}

      def diverged(mse):  # predicting 0 everywhere scores ~4 on these sinusoids
          return not np.isfinite(mse) or mse > 10
      fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
      for name, curve in curves.items():
          ax1.plot([r["step"] for r in curve], [r["query_loss"] for r in curve], marker=".", label=name)
          t = tables[name]
          ok = [s for s in STEPS if not diverged(t[s]["query_loss"][0])]
          ax2.errorbar(ok, [t[s]["query_loss"][0] for s in ok], yerr=[t[s]["query_loss"][1] for s in ok],
                       marker="o", capsize=3, label=name)
      ax1.set_xlabel("meta-step"); ax1.set_ylabel("query MSE after 1 step (training tasks)"); ax1.set_yscale("log")
      ax2.set_xlabel("adaptation steps"); ax2.set_ylabel("query MSE, held-out tasks (95% CI)")
      ax1.legend(); ax2.legend()
      plt.show()

      def cell(mean, ci):
          return f"{'diverged':>20}" if diverged(mean) else f"{mean:>12.3f} +/- {ci:.3f}"

      print(f"{'steps':>5}" + "".join(f"{name:>20}" for name in learners))
      for s in STEPS:
          print(f"{s:>5}" + "".join(cell(*tables[n][s]["query_loss"]) for n in learners))
      """),
      _md("""
      With full settings Meta-SGD is the best learner after the **one** step it was trained for; a second step
      with the same rates makes it worse, and from the third it **diverges** (the plot and the table leave
      those points out). Its
      per-parameter rates grow well above 0.01 (some past 1) because the meta-objective only ever saw a single
      step: a rate that overshoots on a second step costs it nothing. MAML's shared rate stays 0.01, so more
      steps keep helping. To use Meta-SGD with k steps, train it with `steps=k`.
      """),
      _md("""
      Meta-SGD's learned rates are part of its meta-parameters; here is how far they moved from 0.01, per
      layer:
      """),
      _code("""
      lrs = trained["Meta-SGD"]["lr"]["params"]
      for layer, leaves in lrs.items():
          print(layer, {k: f"mean {float(v.mean()):.4f}, range [{float(v.min()):.4f}, {float(v.max()):.4f}]"
                        for k, v in leaves.items()})
      """),
      _md("""
      A sanity check that also guards this notebook in CI: the step each learner was trained for lowers the
      error on the support points; for MAML and FOMAML (one fixed rate) so do ten steps, and every one of their
      meta-test errors is finite.
      """),
      _code("""
      for name, t in tables.items():
          assert np.isfinite(t[1]["query_loss"][0]), name
          assert t[1]["support_loss"][0] < t[0]["support_loss"][0], (name, t[0], t[1])
          if name != "Meta-SGD":
              assert all(np.isfinite(t[s]["query_loss"][0]) for s in STEPS), name
              assert t[10]["support_loss"][0] < t[0]["support_loss"][0], (name, t[0], t[10])
      print("ok")
      """),
      _md("""
      ## Where next

      * `jmeta train --algo maml --iterations 70000` reproduces the paper's setting from the command line.
      * Any optax transformation can be the inner optimizer: `jmeta.maml(loss_fn, optax.adam(1e-2), steps=5)`.
      * `03_compose_your_own` builds a new meta-learner from these pieces.
      """),
  ]
  return name, cells


def nb_03():
  name = "03_compose_your_own"
  cells = [
      _md(f"""
      {badge(name)}

      # Compose your own meta-learner

      jmeta's algorithms are small bundles of pure functions, so a new idea is a new bundle, not a fork. This
      notebook builds one in a research setting:

      1. a **custom task family** (Gaussian bumps of random height, centre and width);
      2. a **custom model** written in flax NNX;
      3. a **new meta-learner**: MAML whose inner loop is *Adam*, differentiated through (moments included),
         with the inner learning rate itself meta-learned;
      4. its **meta-gradient checked** against finite differences with `jax.test_util.check_grads`;
      5. the meta-step under **`jit` and `vmap`**, meta-training, and an ablation against plain MAML.
      """),
      setup_cell(),
      _md("""
      The gradient check needs float64, which JAX enables with a flag at start-up. Everything else below is
      float32 (the data and the model ask for it explicitly).
      """),
      _code("""
      import time
      import jax
      jax.config.update("jax_enable_x64", True)
      import jax.numpy as jnp
      import matplotlib.pyplot as plt
      import numpy as np
      import optax
      from flax import nnx
      from jax.test_util import check_grads
      import jmeta

      ITERATIONS = 20 if SMALL else 3_000
      META_BATCH = 4 if SMALL else 16
      INNER_STEPS = 5
      """),
      _md("""
      ## 1. A task family

      A `jmeta.TaskFamily` is three pure functions of explicit keys: `sample_params(key)` draws what defines
      a task, `make_task(key, params)` draws its support and query sets, and `target_fn(params, x)` is the
      noiseless truth (for plots). `family.sample_batch(key, n)` then `vmap`s over split keys.
      """),
      _code("""
      def bump_family(shots=10, queries=10, dtype=jnp.float32):
          def sample_params(key):
              kh, kc, kw = jax.random.split(key, 3)
              return {"height": jax.random.uniform(kh, (), dtype, -2.0, 2.0),
                      "center": jax.random.uniform(kc, (), dtype, -3.0, 3.0),
                      "width": jax.random.uniform(kw, (), dtype, 0.3, 1.5)}

          def target_fn(p, x):
              return p["height"] * jnp.exp(-0.5 * ((x - p["center"]) / p["width"]) ** 2)

          def make_task(key, p):
              x = jax.random.uniform(key, (shots + queries, 1), dtype, -5.0, 5.0)
              y = target_fn(p, x)
              return jmeta.Task(x[:shots], y[:shots], x[shots:], y[shots:])

          return jmeta.TaskFamily(sample_params, make_task, target_fn, "bump")

      family = bump_family()
      xs = jnp.linspace(-5.0, 5.0, 200, dtype=jnp.float32)[:, None]
      plt.figure(figsize=(6, 3))
      for i in range(6):
          plt.plot(xs[:, 0], family.target_fn(family.sample_params(jax.random.key(i)), xs)[:, 0])
      plt.title("six tasks of the bump family"); plt.xlabel("x")
      plt.show()
      """),
      _md("""
      ## 2. A model in flax NNX

      jmeta consumes a pure `apply(params, x)`. `jmeta.from_nnx` splits an NNX module into its parameters
      (an `nnx.State`, a pytree) and such an `apply`, so `jax.grad`, `vmap` and `jit` see plain functions.
      """),
      _code("""
      class ResidualTanhNet(nnx.Module):
          def __init__(self, width: int, *, rngs: nnx.Rngs):
              self.inp = nnx.Linear(1, width, rngs=rngs)
              self.mid = nnx.Linear(width, width, rngs=rngs)
              self.out = nnx.Linear(width, 1, rngs=rngs)

          def __call__(self, x):
              h = jnp.tanh(self.inp(x))
              h = h + jnp.tanh(self.mid(h))
              return self.out(h)

      params, apply = jmeta.from_nnx(ResidualTanhNet(32, rngs=nnx.Rngs(0)))
      loss_fn = jmeta.mse_loss(apply)  # loss_fn(params, x, y)
      for path, leaf in jax.tree_util.tree_leaves_with_path(params):
          print(jax.tree_util.keystr(path), leaf.shape, leaf.dtype)
      """),
      _md("""
      ## 3. A new meta-learner

      A `jmeta.MetaLearner` is a NamedTuple of pure functions: `init`, `adapt`, `task_loss`, `task_grad`
      (and optionally `predict`). Everything learnable lives in the meta-parameter pytree that `init`
      returns; here the initialisation *and* the log of Adam's inner learning rate.

      `jmeta.inner_loop` does the adaptation: a `lax.scan` of gradient steps with any optax optimizer, so the
      compile time does not grow with the number of steps, and it is differentiable end to end. Because
      `optax.adam` receives the learning rate as a traced array, the meta-gradient reaches it through all the
      inner steps and Adam's moment estimates.
      """),
      _code("""
      def adam_maml(loss_fn, *, steps: int, init_lr: float = 0.01) -> jmeta.MetaLearner:
          \"\"\"MAML with a differentiable Adam inner loop whose learning rate is meta-learned.\"\"\"

          def init(key, params):
              del key  # deterministic: the model's own initialisation
              return {"params": params, "log_lr": jnp.log(jnp.asarray(init_lr, jnp.float32))}

          def adapt(meta_params, x, y, *, steps=steps):
              inner_opt = optax.adam(jnp.exp(meta_params["log_lr"]))
              return jmeta.inner_loop(loss_fn, meta_params["params"], x, y, inner_opt, steps)

          def task_loss(meta_params, task, step=0, *, steps=steps):
              adapted = adapt(meta_params, task.support_x, task.support_y, steps=steps)
              loss = loss_fn(adapted.params, task.query_x, task.query_y)
              before = loss_fn(jax.lax.stop_gradient(meta_params["params"]), task.query_x, task.query_y)
              return loss, {"query_loss": loss, "query_loss_before": before,
                            "support_loss_before": adapted.losses[0], "support_loss": adapted.losses[-1]}

          def task_grad(meta_params, task, step=0):
              return jax.grad(task_loss, has_aux=True)(meta_params, task, step)

          def predict(meta_params, support_x, support_y, query_x, *, steps=steps):
              return apply(adapt(meta_params, support_x, support_y, steps=steps).params, query_x)

          return jmeta.MetaLearner(init, adapt, task_loss, task_grad, predict)

      learner = adam_maml(loss_fn, steps=INNER_STEPS)
      meta_params = learner.init(jax.random.key(0), params)
      """),
      _md("""
      ## 4. Check the meta-gradient before training

      `check_grads` compares reverse-mode derivatives with finite differences along random directions. We run
      it in float64 on one task. Adam divides by the root of its second moment, which makes the loss very
      curved where a gradient is tiny, so the finite-difference step is small (`eps=1e-6`; float64 keeps its
      rounding error far below the tolerance).
      """),
      _code("""
      to64 = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, jnp.float64) if jnp.issubdtype(v.dtype, jnp.floating) else v, tree)
      task64 = to64(family.sample(jax.random.key(42)))
      meta_loss = jax.jit(lambda mp: learner.task_loss(mp, task64)[0])
      check_grads(meta_loss, (to64(meta_params),), order=1, modes=["rev"], eps=1e-6)
      print("the meta-gradient matches finite differences")
      """),
      _md("""
      ## 5. Under `jit` and `vmap`

      A batch of tasks is one `Task` with a leading axis on every leaf, so per-task meta-gradients are a
      `vmap` away. They must equal a Python loop over the tasks.
      """),
      _code("""
      tasks = family.sample_batch(jax.random.key(7), 4)
      per_task = jax.jit(jax.vmap(learner.task_grad, in_axes=(None, 0, None)))
      grads_vmap, metrics_vmap = per_task(meta_params, tasks, 0)
      one_task = jax.jit(learner.task_grad)
      for i in range(4):
          g_i, _ = one_task(meta_params, jax.tree.map(lambda v: v[i], tasks), 0)
          jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-6), grads_vmap, g_i)
      print("vmap == loop; per-task query losses:", np.round(np.asarray(metrics_vmap["query_loss"]), 3))
      """),
      _md("""
      `jmeta.make_meta_step` wraps exactly that: `vmap` over the task batch, the mean meta-gradient, an
      optax update (Adam on the meta-parameters, so on the log learning rate too) and a non-finite guard, in one
      `jit`. `jmeta.fit` runs many such steps per compiled call. As an ablation we train plain MAML with the
      same network and a fixed inner Adam learning rate.
      """),
      _code("""
      def train(learner, log_every=max(1, ITERATIONS // 20)):
          step = jmeta.make_meta_step(learner, optax.adam(1e-3))
          state = step.init(jax.random.key(1), params)
          t0, records, lrs = time.time(), [], []
          for state, record in jmeta.fit(step, state, family.sample_batch, key=jax.random.key(2),
                                         iterations=ITERATIONS, meta_batch=META_BATCH, log_every=log_every):
              records.append(record)
              if isinstance(state.meta_params, dict) and "log_lr" in state.meta_params:
                  lrs.append(float(jnp.exp(state.meta_params["log_lr"])))
          print(f"{ITERATIONS} meta-steps in {time.time() - t0:.1f} s")
          return state, records, lrs

      state, records, lrs = train(learner)
      baseline = jmeta.maml(loss_fn, optax.adam(0.01), steps=INNER_STEPS)
      base_state, base_records, _ = train(baseline)

      fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
      ax1.plot([r["step"] for r in records], [r["query_loss"] for r in records], label="Adam-MAML, learned lr")
      ax1.plot([r["step"] for r in base_records], [r["query_loss"] for r in base_records], label="MAML, Adam lr 0.01")
      ax1.set_xlabel("meta-step"); ax1.set_ylabel("query MSE after adaptation"); ax1.set_yscale("log"); ax1.legend()
      ax2.plot([r["step"] for r in records], lrs)
      ax2.set_xlabel("meta-step"); ax2.set_ylabel("inner Adam learning rate")
      plt.show()
      """),
      _md("""
      ## Adapting to a held-out bump
      """),
      _code("""
      k_params, k_data = jax.random.split(jax.random.key(123))
      task_params = family.sample_params(k_params)
      task = family.make_task(k_data, task_params)
      plt.figure(figsize=(6, 3.5))
      plt.plot(xs[:, 0], family.target_fn(task_params, xs)[:, 0], color="red", label="true curve")
      predict = jax.jit(lambda mp: [learner.predict(mp, task.support_x, task.support_y, xs, steps=k)
                                    for k in (0, INNER_STEPS)])
      for k, pred, style in zip((0, INNER_STEPS), predict(state.meta_params), (":", "-")):
          plt.plot(xs[:, 0], pred[:, 0], style, color="tab:green", label=f"after {k} Adam steps")
      plt.scatter(task.support_x[:, 0], task.support_y[:, 0], marker="^", color="purple", zorder=5, label="support")
      plt.legend(fontsize=8); plt.xlabel("x")
      plt.show()

      table = jmeta.evaluate(learner, state.meta_params, family.sample_batch, jax.random.key(3),
                             num_tasks=10 if SMALL else 1_000, steps=(0, INNER_STEPS))
      for k, row in table.items():
          print(f"{k} steps: query MSE {row['query_loss'][0]:.4f} +/- {row['query_loss'][1]:.4f}")
      assert table[INNER_STEPS]["support_loss"][0] < table[0]["support_loss"][0]
      """),
      _md("""
      ## What else plugs in

      * any optax transformation as the inner optimizer, including `optax.inject_hyperparams(...)` to expose
        more of its hyperparameters to the meta-gradient;
      * `jmeta.inner_loop(..., first_order=True)` for a first-order variant, `remat=True` to save memory,
        `mask=` to adapt only part of the network (ANIL);
      * `jmeta.make_meta_step(..., task_map="scan")` to trade speed for memory over large task batches.
      """),
  ]
  return name, cells


def nb_02():
  name = "02_omniglot_few_shot"
  cells = [
      _md(f"""
      {badge(name)}

      # Few-shot classification on Omniglot: ProtoNets and MAML

      Omniglot (Lake et al., 2015) holds 1,623 handwritten characters from 50 alphabets, each drawn by 20
      people. A *5-way 1-shot episode* shows the learner one drawing of each of 5 new characters and asks it
      to label further drawings of them. This notebook

      1. prepares Omniglot with tensorflow-datasets (no TensorFlow needed: jmeta's builder writes
         array_record files) and loads it as class-indexed arrays on the device;
      2. shows an episode;
      3. meta-trains Prototypical Networks (Snell et al., 2017) and MAML (Finn et al., 2017) on the 4-block
         conv net for a few minutes each;
      4. meta-tests them with 95% confidence intervals, and shows the mistakes.
      """),
      setup_cell(),
      _md("""
      ## Settings

      The full settings train each learner for `TIME_BUDGET` seconds: on a 2-core CPU runtime that is far
      from the papers' 60,000 meta-steps, so expect lower accuracies than theirs (a GPU runtime gets much
      further in the same time). `SMALL` (CI) uses a tiny made-up dataset and a tiny network.
      """),
      _code("""
      import tempfile
      import time
      import jax
      import jax.numpy as jnp
      import matplotlib.pyplot as plt
      import numpy as np
      import optax
      import jmeta
      from jmeta import data as jdata
      from jmeta import ConvBody, ConvNet

      WAYS, SHOTS = 5, 1
      QUERIES = 2 if SMALL else 15          # query drawings per class
      HIDDEN = 8 if SMALL else 64           # filters per convolution (64 in the papers)
      BLOCKS = 2 if SMALL else 4            # conv blocks (4 in the papers; 2 compile faster in CI)
      META_BATCH = 4 if SMALL else 8        # episodes per meta-step
      TIME_BUDGET = 0 if SMALL else 120     # seconds of meta-training per learner, after compilation
      MAX_STEPS = 4 if SMALL else 60_000
      LOG_EVERY = 2 if SMALL else 20        # meta-steps per compiled block (the budget is checked between blocks)
      EVAL_EPISODES = 8 if SMALL else 600
      print(jax.devices())
      """),
      _md("""
      ## The data

      `jmeta.data.load_omniglot` prepares the dataset once (tensorflow-datasets, array_record format) from the
      two official archives, resizes the images to 28x28 and caches them, then returns the meta-train and
      meta-test classes as arrays of shape `(classes, 20 drawers, 28, 28, 1)`. We use the split of Vinyals et
      al. (2016): 1,200 characters for meta-training, 423 for meta-testing, each rotated by 90, 180 and 270
      degrees to make new classes.

      * On Colab, `download=True` fetches the archives (about 15 MB).
      * Locally, point `OMNIGLOT_DIR` at a folder holding `images_background.zip` and
        `images_evaluation.zip`.
      * In CI (`SMALL`), two tiny archives of the same layout with random pixels are written on the spot.
      """),
      _code("""
      DATA_DIR = os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))
      LOCAL = os.environ.get("OMNIGLOT_DIR", "../../shared/data/omniglot")

      t0 = time.time()
      if SMALL:
          root = tempfile.mkdtemp()
          counts = jdata.write_fake_omniglot(os.path.join(root, "manual"),
                                             {"images_background": [4, 4], "images_evaluation": [3, 3]},
                                             drawers=4)
          splits = jdata.load_omniglot(root, manual_dir=os.path.join(root, "manual"), split="lake", num_valid=0,
                                       rotations=True, config=jdata.OmniglotConfig(name="tiny", expected_counts=counts))
      else:
          os.makedirs(DATA_DIR, exist_ok=True)
          have_local = os.path.isfile(os.path.join(LOCAL, "images_background.zip"))
          splits = jdata.load_omniglot(DATA_DIR, manual_dir=LOCAL if have_local else None, download=not have_local,
                                       split="vinyals", num_valid=0, rotations=True)
      train_classes, test_classes = splits.train, splits.test
      print(f"meta-train {train_classes.shape}, meta-test {test_classes.shape} ({time.time() - t0:.0f} s)")
      """),
      _md("""
      ## An episode

      `jmeta.sample_episodes(key, classes, ways, shots, queries, batch)` draws a batch of episodes on the
      device (it is `jit`-able, so meta-training samples episodes inside the compiled loop). Labels are a
      fresh random assignment in every episode: the learner cannot memorise which character is "class 0".
      """),
      _code("""
      episode = jmeta.sample_episodes(jax.random.key(0), train_classes, ways=WAYS, shots=SHOTS,
                                      queries=QUERIES, batch=1)
      episode = jax.tree.map(lambda v: v[0], episode)
      shown = min(QUERIES, 5)
      fig, axes = plt.subplots(WAYS, 1 + shown, figsize=(1.3 * (1 + shown), 1.3 * WAYS))
      for label in range(WAYS):
          axes[label, 0].imshow(episode.support_x[label * SHOTS, ..., 0], cmap="gray_r")
          axes[label, 0].set_ylabel(f"label {label}")
          for j in range(shown):
              axes[label, 1 + j].imshow(episode.query_x[label * QUERIES + j, ..., 0], cmap="gray_r")
      axes[0, 0].set_title("support")
      axes[0, 1].set_title("queries")
      for ax in axes.ravel():
          ax.set_xticks([]); ax.set_yticks([])
      plt.show()
      """),
      _md("""
      ## Two learners on one conv net

      * **ProtoNets** embed every image with the conv body (`ConvBody`: four blocks of 3x3 convolution,
        batch-statistics normalisation, ReLU and 2x2 max-pooling) and label a query by its nearest class mean
        ("prototype") in that space. There is no inner loop: the meta-parameters are the embedding.
      * **MAML** puts a 5-way linear head on the same body (`ConvNet`) and adapts the whole network with one
        SGD step of learning rate 0.4 on the support set, as in Finn et al.'s 5-way Omniglot setting.

      Both are meta-trained with Adam (1e-3) through `jmeta.make_meta_step` and `jmeta.fit`, which draws the
      episodes on the device inside each compiled block of meta-steps.
      """),
      _code("""
      x0 = jnp.zeros((2, *train_classes.shape[2:]), jnp.float32)
      body = ConvBody(hidden=HIDDEN, blocks=BLOCKS)
      net = ConvNet(ways=WAYS, hidden=HIDDEN, blocks=BLOCKS)
      learners = {
          "ProtoNets": (jmeta.algorithms.protonet(body.apply, ways=WAYS), body.init(jax.random.key(1), x0)),
          "MAML": (jmeta.maml(jmeta.cross_entropy_loss(net.apply), optax.sgd(0.4), steps=1),
                   net.init(jax.random.key(1), x0)),
      }

      def sample_train(key, n):
          return jmeta.sample_episodes(key, train_classes, ways=WAYS, shots=SHOTS, queries=QUERIES, batch=n)

      trained, curves = {}, {}
      for name, (learner, params) in learners.items():
          step = jmeta.make_meta_step(learner, optax.adam(1e-3))
          state = step.init(jax.random.key(2), params)
          t0, first, curves[name] = time.time(), None, []
          for state, record in jmeta.fit(step, state, sample_train, key=jax.random.key(3),
                                         iterations=MAX_STEPS, meta_batch=META_BATCH, log_every=LOG_EVERY):
              first = first or time.time() - t0  # the first block includes compilation
              curves[name].append(record)
              if time.time() - t0 - first >= TIME_BUDGET:
                  break
          trained[name] = state.meta_params
          print(f"{name}: {record['step']} meta-steps in {time.time() - t0:.0f} s (compilation {first:.0f} s),"
                f" training accuracy {record['query_accuracy']:.3f}")

      plt.figure(figsize=(6, 3.5))
      for name, curve in curves.items():
          plt.plot([r["step"] for r in curve], [r["query_accuracy"] for r in curve], label=name)
      plt.xlabel("meta-step"); plt.ylabel("query accuracy (training episodes)"); plt.legend()
      plt.show()
      """),
      _md("""
      ## Meta-test with confidence intervals

      `jmeta.evaluate` draws held-out episodes from the meta-test characters (never seen in training) and
      returns the mean accuracy and the half-width of its 95% confidence interval. MAML adapts with the one
      step it was trained with; ProtoNets have no inner steps.
      """),
      _code("""
      def sample_test(key, n):
          return jmeta.sample_episodes(key, test_classes, ways=WAYS, shots=SHOTS, queries=QUERIES, batch=n)

      results = {}
      for name, (learner, _) in learners.items():
          steps = 0 if name == "ProtoNets" else 1
          table = jmeta.evaluate(learner, trained[name], sample_test, jax.random.key(4),
                                 num_tasks=EVAL_EPISODES, steps=(steps,), batch_size=min(EVAL_EPISODES, 20))
          results[name] = table[steps]["query_accuracy"]
          mean, ci = results[name]
          print(f"{name:>10}: {WAYS}-way {SHOTS}-shot accuracy {100 * mean:.1f} +/- {100 * ci:.1f} %"
                f" over {EVAL_EPISODES} episodes")
          assert 0.0 <= mean <= 1.0

      plt.figure(figsize=(4, 3.5))
      names = list(results)
      plt.bar(names, [100 * results[n][0] for n in names], yerr=[100 * results[n][1] for n in names], capsize=5)
      plt.axhline(100 / WAYS, color="gray", linestyle=":", label="chance")
      plt.ylabel("meta-test accuracy, % (95% CI)"); plt.legend()
      plt.show()
      """),
      _md("""
      ## The mistakes

      `learner.predict` adapts to a support set and returns logits for the queries (the same call for every
      learner: MAML's model is the one its loss was built from); under `vmap` it runs
      over a batch of episodes at once. For each wrong query below: the query, the support drawing of the
      class the learner chose, and the support drawing of the right class.
      """),
      _code("""
      episodes = sample_test(jax.random.key(5), 20)
      predict = {
          "ProtoNets": lambda mp, t: learners["ProtoNets"][0].predict(mp, t.support_x, t.support_y, t.query_x),
          "MAML": lambda mp, t: learners["MAML"][0].predict(mp, t.support_x, t.support_y, t.query_x),
      }
      for name, fn in predict.items():
          logits = jax.jit(jax.vmap(fn, in_axes=(None, 0)))(trained[name], episodes)
          guess = np.asarray(jnp.argmax(logits, -1))
          wrong = np.argwhere(guess != np.asarray(episodes.query_y))[:8]  # (episode, query) pairs
          print(f"{name}: {len(np.argwhere(guess != np.asarray(episodes.query_y)))} mistakes out of {guess.size} queries")
          if len(wrong) == 0:
              continue
          fig, axes = plt.subplots(3, len(wrong), figsize=(1.3 * len(wrong), 4.2), squeeze=False)
          for col, (e, q) in enumerate(wrong):
              chosen, right = guess[e, q], int(episodes.query_y[e, q])
              for row, image in enumerate((episodes.query_x[e, q], episodes.support_x[e, chosen * SHOTS],
                                           episodes.support_x[e, right * SHOTS])):
                  axes[row, col].imshow(image[..., 0], cmap="gray_r")
                  axes[row, col].set_xticks([]); axes[row, col].set_yticks([])
          for row, label in enumerate(("query", "chosen", "right")):
              axes[row, 0].set_ylabel(label)
          fig.suptitle(f"{name}: mistakes")
          plt.show()
      """),
      _md("""
      ## Going further

      * `jmeta train --dataset omniglot --data-dir <folder> --algo protonet` (or `maml`, `matching`, `r2d2`,
        `anil`, ...) runs the same experiment from the command line, with validation and more meta-steps.
      * 20-way: `WAYS = 20` with MAML's five inner steps of 0.1 (`jmeta.maml(..., optax.sgd(0.1), steps=5)`).
      """),
  ]
  return name, cells


def nb_04():
  name = "04_learning_to_optimize"
  cells = [
      _md(f"""
      {badge(name)}

      # Learning to optimize

      The inner loop of a meta-learner is an optimizer, and its settings can be learned too. This notebook
      compares learned optimization against hand-tuned baselines on sinusoid regression:

      1. **learned inner learning rates**: Meta-SGD (Li et al., 2017) learns one inner learning rate per
         parameter, against MAML with a hand-tuned grid of inner learning rates (the whole grid is
         meta-trained at once, under one `vmap`);
      2. **a learned optimizer**: a small MLP applied to every coordinate (Andrychowicz et al., 2016; Metz et
         al., 2019) is meta-trained by differentiating through the training runs it drives, then compared
         with SGD and Adam at their best learning rates;
      3. **meta-learned hyperparameters**: the learning rate and weight decay of a whole training run, learned
         by hypergradient descent through the unrolled run
         (Maclaurin et al., 2015; Franceschi et al., 2017), against a grid search. A per-step learning-rate
         schedule is one argument away (`per_step=("learning_rate",)`).
      """),
      setup_cell(),
      _code("""
      import time
      import jax
      import jax.numpy as jnp
      import matplotlib.pyplot as plt
      import numpy as np
      import optax
      import jmeta
      from jmeta import learned_optimizer, mlp_optimizer

      ITERATIONS = 10 if SMALL else 3_000     # meta-steps (part 1)
      LOPT_ITERATIONS = 10 if SMALL else 1_000  # meta-steps of the learned optimizer (part 2)
      META_BATCH = 4 if SMALL else 25
      TEST_TASKS = 20 if SMALL else 1_000

      family = jmeta.sinusoid(shots=10, queries=10)
      test_tasks = jmeta.sinusoid(shots=10, queries=100).sample_batch(jax.random.key(99), TEST_TASKS)
      model = jmeta.MLP()
      params = model.init(jax.random.key(0), jnp.zeros((1, 1)))
      loss_fn = jmeta.mse_loss(model.apply)
      """),
      _md("""
      ## 1. Learned inner learning rates against a hand-tuned grid

      A meta-learner built from a *traced* learning rate is an ordinary JAX function of it, so the whole
      meta-training (a `lax.scan` of the pure `step.step_fn`) can be `vmap`ped over a grid of inner learning
      rates and compiled once. Every run sees the same task stream.
      """),
      _code("""
      LRS = jnp.array([0.003, 0.01, 0.03, 0.1, 0.3])

      def meta_train(learner, key):
          step = jmeta.make_meta_step(learner, optax.adam(1e-3), jit=False)

          def body(state, i):
              return step.step_fn(state, family.sample_batch(jax.random.fold_in(key, i), META_BATCH))

          state, metrics = jax.lax.scan(body, step.init(key, params), jnp.arange(ITERATIONS))
          return state.meta_params, metrics["query_loss"]

      def meta_test_losses(learner, meta_params):  # per-task query MSE after one inner step
          return jax.vmap(lambda t: learner.task_loss(meta_params, t)[0])(test_tasks)

      @jax.jit
      def maml_grid(lrs, key):
          def one(lr):
              learner = jmeta.maml(loss_fn, optax.sgd(lr), steps=1)
              meta_params, curve = meta_train(learner, key)
              return curve, meta_test_losses(learner, meta_params)
          return jax.vmap(one)(lrs)

      @jax.jit
      def meta_sgd_run(key):
          learner = jmeta.meta_sgd(loss_fn, steps=1, init_lr=0.01)
          meta_params, curve = meta_train(learner, key)
          return curve, meta_test_losses(learner, meta_params), meta_params["lr"]

      t0 = time.time()
      maml_curves, maml_test = jax.block_until_ready(maml_grid(LRS, jax.random.key(1)))
      print(f"MAML at {len(LRS)} inner learning rates: {time.time() - t0:.0f} s")
      t0 = time.time()
      sgd_curve, sgd_test, learned_lrs = jax.block_until_ready(meta_sgd_run(jax.random.key(1)))
      print(f"Meta-SGD: {time.time() - t0:.0f} s")

      maml_ci = [jmeta.mean_ci95(row) for row in np.asarray(maml_test)]
      meta_sgd_ci = jmeta.mean_ci95(sgd_test)
      for lr, (m, h) in zip(np.asarray(LRS), maml_ci):
          print(f"MAML, inner lr {lr:<6g}: query MSE after 1 step {m:.3f} +/- {h:.3f}")
      print(f"Meta-SGD (learned)   : query MSE after 1 step {meta_sgd_ci[0]:.3f} +/- {meta_sgd_ci[1]:.3f}")
      """),
      _code("""
      def smooth(x, k=max(1, ITERATIONS // 50)):
          return np.convolve(np.asarray(x), np.ones(k) / k, mode="valid")

      fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.8))
      for lr, curve in zip(np.asarray(LRS), maml_curves):
          ax1.plot(smooth(curve), label=f"MAML, lr {lr:g}")
      ax1.plot(smooth(sgd_curve), "k", label="Meta-SGD")
      ax1.set_xlabel("meta-step"); ax1.set_ylabel("query MSE (training tasks)"); ax1.set_yscale("log")
      ax1.legend(fontsize=7)
      ax2.errorbar(np.asarray(LRS), [m for m, _ in maml_ci], yerr=[h for _, h in maml_ci], marker="o", capsize=3,
                   label="MAML (hand-tuned grid)")
      ax2.axhspan(meta_sgd_ci[0] - meta_sgd_ci[1], meta_sgd_ci[0] + meta_sgd_ci[1], color="k", alpha=0.2,
                  label="Meta-SGD (95% CI)")
      ax2.set_xscale("log"); ax2.set_xlabel("MAML inner learning rate")
      ax2.set_ylabel("held-out query MSE after 1 step"); ax2.legend(fontsize=8)
      ax3.hist(np.concatenate([np.ravel(v) for v in jax.tree.leaves(learned_lrs)]), bins=50)
      ax3.axvline(0.01, color="gray", linestyle=":", label="initial value")
      ax3.set_xlabel("Meta-SGD's learned per-parameter learning rates"); ax3.legend(fontsize=8)
      plt.show()
      """),
      _md("""
      ## 2. A learned optimizer

      `mlp_optimizer()` is a coordinate-wise MLP: for every parameter it reads the gradient, several momenta,
      their Adam-style normalised versions and the step count, and outputs the update. `learned_optimizer`
      makes a meta-learner of it: each task trains the network from a fixed initialisation for `UNROLL` steps
      on its support points, and the meta-objective is the mean training loss along that run, differentiated
      through all of it. The trained MLP is then an ordinary optax transformation,
      `lopt.transform(meta_params["opt"])`.
      """),
      _code("""
      UNROLL = 20
      lopt = mlp_optimizer()
      lo_learner = learned_optimizer(loss_fn, lopt, steps=UNROLL)
      lo_step = jmeta.make_meta_step(lo_learner, optax.adam(1e-3), clip_norm=1.0)
      lo_state = lo_step.init(jax.random.key(2), params)
      t0, lo_records = time.time(), []
      for lo_state, record in jmeta.fit(lo_step, lo_state, family.sample_batch, key=jax.random.key(3),
                                        iterations=LOPT_ITERATIONS, meta_batch=META_BATCH,
                                        log_every=max(1, LOPT_ITERATIONS // 20)):
          lo_records.append(record)
      print(f"{LOPT_ITERATIONS} meta-steps in {time.time() - t0:.0f} s; mean training loss along the unroll:"
            f" {lo_records[0]['unroll_loss']:.3f} -> {lo_records[-1]['unroll_loss']:.3f}")
      """),
      _md("""
      Now every optimizer trains the same network from the same initialisation on the held-out tasks. SGD and
      Adam get a grid of learning rates (each grid is one `vmap`ped, compiled call) and we keep the one with
      the best final loss: hand-tuned on the test tasks themselves, which favours them. The runs go on for twice the
      unroll length the learned optimizer was trained on.
      """),
      _code("""
      HORIZON = 2 * UNROLL
      GRID = jnp.array([0.001, 0.003, 0.01, 0.03, 0.1, 0.3])

      def train_curves(opt):  # mean support loss over the test tasks, shape (HORIZON + 1,)
          run = lambda t: jmeta.inner_loop(loss_fn, params, t.support_x, t.support_y, opt, HORIZON).losses
          return jnp.mean(jax.vmap(run)(test_tasks), axis=0)

      baselines = {}
      for name, make in (("SGD", optax.sgd), ("Adam", optax.adam)):
          curves = jax.jit(jax.vmap(lambda lr: train_curves(make(lr))))(GRID)
          best = int(jnp.nanargmin(curves[:, -1]))  # rates that diverge give NaN and are skipped
          baselines[f"{name}, best lr {float(GRID[best]):g}"] = curves[best]
      learned = jax.jit(lambda op: train_curves(lopt.transform(op)))(lo_state.meta_params["opt"])

      plt.figure(figsize=(6, 4))
      for name, curve in baselines.items():
          plt.plot(curve, label=name)
      plt.plot(learned, "k", label="learned optimizer")
      plt.axvline(UNROLL, color="gray", linestyle=":", label="meta-training horizon")
      plt.yscale("log"); plt.xlabel("training step"); plt.ylabel("training MSE (mean over held-out tasks)")
      plt.legend(fontsize=8)
      plt.show()
      for name, curve in {**baselines, "learned optimizer": learned}.items():
          print(f"{name:>24}: loss after {UNROLL} steps {float(curve[UNROLL]):.3f}, after {HORIZON} {float(curve[-1]):.3f}")
          assert np.all(np.isfinite(np.asarray(curve))), name
      """),
      _md("""
      ## 3. Meta-learned hyperparameters against a grid search

      `jmeta.learned_hyperparams` turns any optax factory into a meta-learner of its hyperparameters: the inner
      loop trains a model for `STEPS` steps of `optax.inject_hyperparams(optimizer)(**hyperparams)` on each
      task's training (support) set, the outer objective is the validation (query) loss at the end, and its
      gradient flows back through every step of training to the hyperparameters (kept positive by learning their
      logarithms). Here: a linear model trained by SGD with weight decay on noisy 8-dimensional regression tasks
      with 10 training points each, so that both settings matter. We start from a poor learning rate (1e-3) and
      compare with a 10 x 5 grid of (learning rate, weight decay), every grid point evaluated on the same tasks.

      The validation loss has a cliff: above a learning rate of about 0.15 the training run diverges and the
      hypergradient explodes. A modest outer learning rate (Adam, 0.1) and `clip_norm` keep the search on the
      near side of it.
      """),
      _code("""
      STEPS = 100
      HP_META_STEPS = 5 if SMALL else 100
      DIM = 8
      hp_family = jmeta.linear_regression(shots=10, queries=20, dim=DIM, noise=0.5)
      hp_tasks = hp_family.sample_batch(jax.random.key(4), 64)       # tune on these
      hp_test = hp_family.sample_batch(jax.random.key(5), 1_000)     # report on these
      lin_params = {"w": jnp.zeros((DIM, 1)), "b": jnp.zeros(())}
      lin_loss = jmeta.mse_loss(lambda p, x: x @ p["w"] + p["b"])
      start = {"learning_rate": 1e-3, "weight_decay": 1e-3}

      def validation_loss(learner, meta_params, tasks):
          return jnp.mean(jax.vmap(lambda t: learner.task_loss(meta_params, t)[0])(tasks))

      def hypergradient_search(learner):
          step = jmeta.make_meta_step(learner, optax.adam(0.1), clip_norm=1.0)
          state = step.init(jax.random.key(0), lin_params)
          trace = []
          for _ in range(HP_META_STEPS):
              state, metrics = step.update(state, hp_tasks)
              trace.append(float(metrics["query_loss"]))
          return state.meta_params, trace

      constant = jmeta.learned_hyperparams(lin_loss, init=start, steps=STEPS)
      t0 = time.time()
      const_mp, const_trace = hypergradient_search(constant)
      print(f"hypergradient search, {HP_META_STEPS} meta-steps: {time.time() - t0:.1f} s")

      LR_GRID, WD_GRID = np.logspace(-3, 0, 10), np.logspace(-4, 0, 5)
      grid_val = jax.jit(jax.vmap(jax.vmap(
          lambda lr, wd: validation_loss(constant, {"params": lin_params, "log_hyperparams": {
              "learning_rate": jnp.log(lr), "weight_decay": jnp.log(wd)}}, hp_tasks),
          in_axes=(None, 0)), in_axes=(0, None)))(LR_GRID, WD_GRID)
      grid_val = np.where(np.isfinite(grid_val), grid_val, np.inf)   # diverged runs lose
      i, j = np.unravel_index(np.argmin(grid_val), grid_val.shape)
      grid_mp = {"params": lin_params, "log_hyperparams": {"learning_rate": jnp.log(LR_GRID[i]),
                                                           "weight_decay": jnp.log(WD_GRID[j])}}
      for name, mp in (("grid best", grid_mp), ("hypergradient", const_mp)):
          hp = {k: float(v) for k, v in jmeta.hyperparams_of(mp).items()}
          print(f"{name:>13}: validation {float(validation_loss(constant, mp, hp_tasks)):.4f},"
                f" held-out {float(validation_loss(constant, mp, hp_test)):.4f},"
                f" learning rate {hp['learning_rate']:.3g}, weight decay {hp['weight_decay']:.2g}")
      """),
      _code("""
      fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
      for j, wd in enumerate(WD_GRID):
          ax1.plot(LR_GRID, np.where(np.isfinite(grid_val[:, j]), grid_val[:, j], np.nan), ".-", label=f"wd {wd:g}")
      ax1.set_xscale("log"); ax1.set_yscale("log"); ax1.set_xlabel("learning rate")
      ax1.set_ylabel("validation loss after training"); ax1.legend(fontsize=7); ax1.set_title("grid search")
      ax2.plot(const_trace, "o-", ms=3, label="hypergradient descent from lr 1e-3")
      ax2.axhline(grid_val.min(), color="gray", linestyle="--", label="grid best")
      ax2.set_yscale("log"); ax2.set_xlabel("hypergradient step"); ax2.set_ylabel("validation loss")
      ax2.legend(fontsize=8); ax2.set_title("hypergradient descent")
      plt.show()
      """),
      _md("""
      ## Notes

      * Meta-SGD's rates, like MAML's initialisation, are just leaves of the meta-parameter pytree; any
        optax transformation whose hyperparameters are arrays can be meta-learned the same way (see
        `03_compose_your_own`, which meta-learns Adam's inner learning rate).
      * `learned_optimizer(..., truncation=k)` backpropagates through segments of `k` steps only (truncated
        backpropagation through time) for long unrolls; `objective="query"` meta-trains for the query loss
        at the end of the run instead, as MAML does.
      """),
  ]
  return name, cells


NOTEBOOKS = [nb_01, nb_02, nb_03, nb_04]


def build(make) -> tuple[str, nbformat.NotebookNode]:
  """Builds one notebook; returns its name and the (output-free) notebook."""
  name, cells = make()
  nb = nbformat.v4.new_notebook(cells=cells)
  nb.metadata = {
      "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
      "language_info": {"name": "python"},
      "colab": {"provenance": [], "name": f"{name}.ipynb"},
  }
  # Stable cell ids keep regenerated files byte-identical.
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"{name[:2]}-{i:02d}"
  nbformat.validate(nb)
  return name, nb


def main(argv: list[str]) -> int:
  check = "--check" in argv
  stale = []
  for make in NOTEBOOKS:
    name, nb = build(make)
    path = os.path.join(HERE, f"{name}.ipynb")
    text = nbformat.writes(nb) + "\n"
    if check:
      if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
        stale.append(path)
    else:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text)
      print("wrote", path)
  if stale:
    print("out of date (run python notebooks/_make.py):", *stale, sep="\n  ")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
