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
      STEPS = (0, 10) if SMALL else (0, 1, 2, 5, 10)  # fewer programs to compile in CI
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
      fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
      for name, curve in curves.items():
          ax1.plot([r["step"] for r in curve], [r["query_loss"] for r in curve], marker=".", label=name)
          t = tables[name]
          ax2.errorbar(STEPS, [t[s]["query_loss"][0] for s in STEPS], yerr=[t[s]["query_loss"][1] for s in STEPS],
                       marker="o", capsize=3, label=name)
      ax1.set_xlabel("meta-step"); ax1.set_ylabel("query MSE after 1 step (training tasks)"); ax1.set_yscale("log")
      ax2.set_xlabel("adaptation steps"); ax2.set_ylabel("query MSE, held-out tasks (95% CI)")
      ax1.legend(); ax2.legend()
      plt.show()

      print(f"{'steps':>5}" + "".join(f"{name:>20}" for name in learners))
      for s in STEPS:
          print(f"{s:>5}" + "".join(f"{tables[n][s]['query_loss'][0]:>12.3f} +/- {tables[n][s]['query_loss'][1]:.3f}"
                                    for n in learners))
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
      A sanity check that also guards this notebook in CI: ten inner steps must lower the error on the
      support points for every learner, and every meta-test error must be finite.
      """),
      _code("""
      for name, t in tables.items():
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


NOTEBOOKS = [nb_01, nb_03]


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
