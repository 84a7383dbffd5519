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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jmeta-dev/jmeta/blob/main/notebooks/04_learning_to_optimize.ipynb)
#
# # Learning to optimize
#
# The inner loop of a meta-learner is an optimizer, and its settings can be learned too. This notebook
# compares learned optimization against hand-tuned baselines on sinusoid regression:
#
# 1. **learned inner learning rates**: Meta-SGD (Li et al., 2017) learns one inner learning rate per
#    parameter, against MAML with a hand-tuned grid of inner learning rates (the whole grid is
#    meta-trained at once, under one `vmap`);
# 2. **a learned optimizer**: a small MLP applied to every coordinate (Andrychowicz et al., 2016; Metz et
#    al., 2019) is meta-trained by differentiating through the training runs it drives, then compared
#    with SGD and Adam at their best learning rates;
# 3. **meta-learned hyperparameters**: the learning rate and weight decay of a whole training run, learned
#    by hypergradient descent through the unrolled run
#    (Maclaurin et al., 2015; Franceschi et al., 2017), against a grid search. A per-step learning-rate
#    schedule is one argument away (`per_step=("learning_rate",)`).

# %%
# Setup. On Colab this installs jmeta (a CPU runtime is enough; a GPU one is faster).
# JMETA_SMALL=1 shrinks every setting to a smoke test: that is how CI runs this notebook.
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "jmeta @ git+https://github.com/jmeta-dev/jmeta"], check=True)
SMALL = os.environ.get("JMETA_SMALL", "0") == "1"
print("small settings (CI)" if SMALL else "full settings")

# %%
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

# %% [markdown]
# ## 1. Learned inner learning rates against a hand-tuned grid
#
# A meta-learner built from a *traced* learning rate is an ordinary JAX function of it, so the whole
# meta-training (a `lax.scan` of the pure `step.step_fn`) can be `vmap`ped over a grid of inner learning
# rates and compiled once. Every run sees the same task stream.

# %%
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


# %%
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

# %% [markdown]
# ## 2. A learned optimizer
#
# `mlp_optimizer()` is a coordinate-wise MLP: for every parameter it reads the gradient, several momenta,
# their Adam-style normalised versions and the step count, and outputs the update. `learned_optimizer`
# makes a meta-learner of it: each task trains the network from a fixed initialisation for `UNROLL` steps
# on its support points, and the meta-objective is the mean training loss along that run, differentiated
# through all of it. The trained MLP is then an ordinary optax transformation,
# `lopt.transform(meta_params["opt"])`.

# %%
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

# %% [markdown]
# Now every optimizer trains the same network from the same initialisation on the held-out tasks. SGD and
# Adam get a grid of learning rates (each grid is one `vmap`ped, compiled call) and we keep the one with
# the best final loss: hand-tuned on the test tasks themselves, which favours them. The runs go on for twice the
# unroll length the learned optimizer was trained on.

# %%
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

# %% [markdown]
# ## 3. Meta-learned hyperparameters against a grid search
#
# `jmeta.learned_hyperparams` turns any optax factory into a meta-learner of its hyperparameters: the inner
# loop trains a model for `STEPS` steps of `optax.inject_hyperparams(optimizer)(**hyperparams)` on each
# task's training (support) set, the outer objective is the validation (query) loss at the end, and its
# gradient flows back through every step of training to the hyperparameters (kept positive by learning their
# logarithms). Here: a linear model trained by SGD with weight decay on noisy 8-dimensional regression tasks
# with 10 training points each, so that both settings matter. We start from a poor learning rate (1e-3) and
# compare with a 10 x 5 grid of (learning rate, weight decay), every grid point evaluated on the same tasks.
#
# The validation loss has a cliff: above a learning rate of about 0.15 the training run diverges and the
# hypergradient explodes. A modest outer learning rate (Adam, 0.1) and `clip_norm` keep the search on the
# near side of it.

# %%
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

# %%
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

# %% [markdown]
# ## Notes
#
# * Meta-SGD's rates, like MAML's initialisation, are just leaves of the meta-parameter pytree; any
#   optax transformation whose hyperparameters are arrays can be meta-learned the same way (see
#   `03_compose_your_own`, which meta-learns Adam's inner learning rate).
# * `learned_optimizer(..., truncation=k)` backpropagates through segments of `k` steps only (truncated
#   backpropagation through time) for long unrolls; `objective="query"` meta-trains for the query loss
#   at the end of the run instead, as MAML does.
