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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/jmeta-dev/jmeta/blob/main/notebooks/05_meta_rl.ipynb)
#
# # Meta-reinforcement learning: MAML-RL and RL²
#
# `jmeta.rl` writes meta-RL the JAX way: an environment is pure functions (`reset`, `step`,
# `sample_task`), a rollout is a `lax.scan` over time, tasks and trajectories are `vmap`ped, and a whole
# meta-iteration is one compiled program. This notebook
#
# 1. meta-trains **MAML-RL** (Finn et al., 2017) on 2D navigation, with DiCE (Foerster et al., 2018) in
#    the inner loop, and plots trajectories before and after one policy-gradient step of adaptation;
# 2. trains **RL²** (Duan et al., 2016), a GRU policy trained with PPO across whole trials, on Bernoulli
#    bandits, and compares its total reward per trial with random play, UCB1, Thompson sampling and the
#    Gittins index, played on the same arms.

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
import numpy as np
import optax
import jmeta
from jmeta import rl

NAV_ITERATIONS = 2 if SMALL else 300     # MAML-RL meta-iterations
NAV_GOALS = 4 if SMALL else 20           # goals per meta-iteration
TRAJECTORIES = 4 if SMALL else 20        # episodes per goal and rollout
HIDDEN = 16 if SMALL else 100
BANDIT_ITERATIONS = 4 if SMALL else 1500  # RL² PPO iterations
TEST_TASKS = 8 if SMALL else 100

# %% [markdown]
# ## 1. MAML-RL on 2D navigation
#
# A task is a goal in the unit square; the reward is minus the distance to it. The policy is a Gaussian
# MLP. `rl.maml_rl` is a `jmeta.MetaLearner` over `rl.RLTask` batches: its `task_loss` rolls out 20
# episodes, takes one policy-gradient step (DiCE surrogate, linear feature baseline), rolls out the adapted
# policy and returns minus its surrogate return. `rl.meta_iteration` compiles sample → roll out → adapt →
# roll out → Adam step into one program, and `jmeta.fit` runs blocks of them in one `lax.scan`.

# %%
env = rl.point_nav()
policy = rl.GaussianMLP(2, hidden=(HIDDEN, HIDDEN))
params = policy.init(jax.random.key(0), jnp.zeros((2,)))
learner = rl.maml_rl(env, policy.apply, steps=1, trajectories=TRAJECTORIES, inner_lr=0.1)
it = rl.meta_iteration(learner, env, optax.adam(3e-3), meta_batch=NAV_GOALS)
state = it.init(jax.random.key(1), params)
t0 = time.perf_counter()
for state, rec in jmeta.fit(it.step, state, env.sample_batch, key=jax.random.key(2),
                            iterations=NAV_ITERATIONS, meta_batch=NAV_GOALS,
                            log_every=max(1, NAV_ITERATIONS // 6)):
    print(f"meta-iteration {rec['step']:4d}: return before adaptation {rec['return_before']:8.2f},"
          f" after {rec['return']:8.2f}")
print(f"{time.perf_counter() - t0:.0f} s")

# %%
table = jmeta.evaluate(learner, state.meta_params, env.sample_batch, jax.random.key(3),
                       num_tasks=TEST_TASKS, steps=(0, 1), batch_size=TEST_TASKS)
for s, row in table.items():
    print(f"return after {s} step(s) on {TEST_TASKS} held-out goals: {row['return'][0]:.1f}"
          f" ± {row['return'][1]:.1f}")

# %% [markdown]
# Trajectories of the meta-learned policy on held-out goals (red stars) before adaptation (dotted) and
# after one policy-gradient step on 20 of its own episodes (solid):

# %%
fig = rl.plot_nav_adaptation(learner, state.meta_params, policy.apply, env, jax.random.key(4),
                             steps=(0, 1))

# %% [markdown]
# ## 2. RL² on Bernoulli bandits
#
# A task is 5 arms with success probabilities drawn from U[0, 1]; a trial is 10 pulls. The GRU reads
# the previous action, reward and done flag and keeps its state through the trial, so it can learn to
# explore and then exploit. `rl.rl2` trains it with PPO (GAE over the whole trial, clipped surrogate,
# entropy bonus, minibatch epochs), all one compiled step that `jmeta.fit` drives.

# %%
bandit = rl.bernoulli_bandit(arms=5, pulls=10)
gru = rl.GRUPolicy(actions=5, hidden=16 if SMALL else 128)
gru_params = gru.init(jax.random.key(0), gru.initial_carry(), jnp.ones((1,)), jnp.array(0), 0.0, True)
agent = rl.rl2(bandit, gru.apply, gru.initial_carry(), optax.adam(1e-3))
rl2_state = agent.step.init(jax.random.key(5), gru_params)
t0 = time.perf_counter()
for rl2_state, rec in jmeta.fit(agent.step, rl2_state, bandit.sample_batch, key=jax.random.key(6),
                                iterations=BANDIT_ITERATIONS, meta_batch=8 if SMALL else 64,
                                log_every=max(1, BANDIT_ITERATIONS // 6)):
    print(f"PPO iteration {rec['step']:5d}: total reward per trial {rec['return']:.3f},"
          f" entropy {rec['entropy']:.3f}")
print(f"{time.perf_counter() - t0:.0f} s")

# %% [markdown]
# The same held-out bandits for every strategy (Duan et al., Table 1, reports about 6.7 for RL² and 6.6
# for the Gittins index at k = 5, n = 10):

# %%
test = bandit.sample_batch(jax.random.key(7), 10 * TEST_TASKS)
totals = {"RL²": np.asarray(jax.vmap(
    lambda t: agent.learner.task_loss(rl2_state.meta_params, t)[1]["return"])(test))}
totals.update(rl.bandit_baselines(
    test.params, jax.random.key(8), 10,
    {"random": rl.random_arms, "UCB1": rl.ucb1, "Thompson": rl.thompson,
     "Gittins": rl.gittins(rl.gittins_table(10))}))
for name, v in totals.items():
    m, h = jmeta.mean_ci95(v)
    print(f"{name:9s} {m:.3f} ± {h:.3f}")
