# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jmeta-dev/jmeta/blob/main/notebooks/03_compose_your_own.ipynb)
#
# # Compose your own meta-learner
#
# jmeta's algorithms are small bundles of pure functions, so a new idea is a new bundle, not a fork. This
# notebook builds one in a research setting:
#
# 1. a **custom task family** (Gaussian bumps of random height, centre and width);
# 2. a **custom model** written in flax NNX;
# 3. a **new meta-learner**: MAML whose inner loop is *Adam*, differentiated through (moments included),
#    with the inner learning rate itself meta-learned;
# 4. its **meta-gradient checked** against finite differences with `jax.test_util.check_grads`;
# 5. the meta-step under **`jit` and `vmap`**, meta-training, and an ablation against plain MAML.

# %%
# Setup. On Colab this installs jmeta (a CPU runtime is enough; a GPU one is faster).
# JMETA_SMALL=1 shrinks every setting to a smoke test: that is how CI runs this notebook.
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "jmeta @ git+https://github.com/jmeta-dev/jmeta"], check=True)
SMALL = os.environ.get("JMETA_SMALL", "0") == "1"
print("small settings (CI)" if SMALL else "full settings")

# %% [markdown]
# The gradient check needs float64, which JAX enables with a flag at start-up. Everything else below is
# float32 (the data and the model ask for it explicitly).

# %%
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


# %% [markdown]
# ## 1. A task family
#
# A `jmeta.TaskFamily` is three pure functions of explicit keys: `sample_params(key)` draws what defines
# a task, `make_task(key, params)` draws its support and query sets, and `target_fn(params, x)` is the
# noiseless truth (for plots). `family.sample_batch(key, n)` then `vmap`s over split keys.

# %%
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


# %% [markdown]
# ## 2. A model in flax NNX
#
# jmeta consumes a pure `apply(params, x)`. `jmeta.from_nnx` splits an NNX module into its parameters
# (an `nnx.State`, a pytree) and such an `apply`, so `jax.grad`, `vmap` and `jit` see plain functions.

# %%
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


# %% [markdown]
# ## 3. A new meta-learner
#
# A `jmeta.MetaLearner` is a NamedTuple of pure functions: `init`, `adapt`, `task_loss`, `task_grad`
# (and optionally `predict`). Everything learnable lives in the meta-parameter pytree that `init`
# returns; here the initialisation *and* the log of Adam's inner learning rate.
#
# `jmeta.inner_loop` does the adaptation: a `lax.scan` of gradient steps with any optax optimizer, so the
# compile time does not grow with the number of steps, and it is differentiable end to end. Because
# `optax.adam` receives the learning rate as a traced array, the meta-gradient reaches it through all the
# inner steps and Adam's moment estimates.

# %%
def adam_maml(loss_fn, *, steps: int, init_lr: float = 0.01) -> jmeta.MetaLearner:
    """MAML with a differentiable Adam inner loop whose learning rate is meta-learned."""

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

# %% [markdown]
# ## 4. Check the meta-gradient before training
#
# `check_grads` compares reverse-mode derivatives with finite differences along random directions. We run
# it in float64 on one task. Adam divides by the root of its second moment, which makes the loss very
# curved where a gradient is tiny, so the finite-difference step is small (`eps=1e-6`; float64 keeps its
# rounding error far below the tolerance).

# %%
to64 = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, jnp.float64) if jnp.issubdtype(v.dtype, jnp.floating) else v, tree)
task64 = to64(family.sample(jax.random.key(42)))
meta_loss = jax.jit(lambda mp: learner.task_loss(mp, task64)[0])
check_grads(meta_loss, (to64(meta_params),), order=1, modes=["rev"], eps=1e-6)
print("the meta-gradient matches finite differences")

# %% [markdown]
# ## 5. Under `jit` and `vmap`
#
# A batch of tasks is one `Task` with a leading axis on every leaf, so per-task meta-gradients are a
# `vmap` away. They must equal a Python loop over the tasks.

# %%
tasks = family.sample_batch(jax.random.key(7), 4)
per_task = jax.jit(jax.vmap(learner.task_grad, in_axes=(None, 0, None)))
grads_vmap, metrics_vmap = per_task(meta_params, tasks, 0)
one_task = jax.jit(learner.task_grad)
for i in range(4):
    g_i, _ = one_task(meta_params, jax.tree.map(lambda v: v[i], tasks), 0)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-6), grads_vmap, g_i)
print("vmap == loop; per-task query losses:", np.round(np.asarray(metrics_vmap["query_loss"]), 3))


# %% [markdown]
# `jmeta.make_meta_step` wraps exactly that: `vmap` over the task batch, the mean meta-gradient, an
# optax update (Adam on the meta-parameters, so on the log learning rate too) and a non-finite guard, in one
# `jit`. `jmeta.fit` runs many such steps per compiled call. As an ablation we train plain MAML with the
# same network and a fixed inner Adam learning rate.

# %%
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

# %% [markdown]
# ## Adapting to a held-out bump

# %%
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

# %% [markdown]
# ## What else plugs in
#
# * any optax transformation as the inner optimizer, including `optax.inject_hyperparams(...)` to expose
#   more of its hyperparameters to the meta-gradient;
# * `jmeta.inner_loop(..., first_order=True)` for a first-order variant, `remat=True` to save memory,
#   `mask=` to adapt only part of the network (ANIL);
# * `jmeta.make_meta_step(..., task_map="scan")` to trade speed for memory over large task batches.
