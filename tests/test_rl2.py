"""RL² with PPO (jmeta.rl.rl2) and the classical bandit strategies it is compared with."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmeta
from jmeta import rl


def small_rl2(arms=2, pulls=6, hidden=8, **kw):
  env = rl.bernoulli_bandit(arms, pulls)
  gru = rl.GRUPolicy(actions=arms, hidden=hidden)
  params = gru.init(jax.random.key(0), gru.initial_carry(), jnp.ones((1,)), jnp.array(0), 0.0,
                    True)
  agent = rl.rl2(env, gru.apply, gru.initial_carry(), optax.adam(kw.pop("lr", 1e-2)), **kw)
  return env, gru, params, agent


# --------------------------------------------------------------------------- PPO


def test_ppo_clip_objective_gradient_by_hand():
  old = jnp.log(jnp.array([0.5, 0.5, 0.5, 0.5, 0.2]))
  # Ratios 1.6 (A > 0: clipped, no gradient), 1.1 (A > 0: inside), 0.6 (A < 0: clipped),
  # 0.6 (A > 0: min is the unclipped term), 1.0 (A < 0: inside).
  ratio = np.array([1.6, 1.1, 0.6, 0.6, 1.0])
  adv = jnp.array([2.0, 1.5, -1.0, 0.7, -3.0])
  logp = old + jnp.log(ratio)
  value = rl.ppo_clip_objective(logp, old, adv, 0.2)
  clipped = np.clip(ratio, 0.8, 1.2)
  np.testing.assert_allclose(value, np.mean(np.minimum(ratio * adv, clipped * adv)), rtol=1e-6)
  np.testing.assert_allclose(value, np.mean([1.2 * 2.0, 1.1 * 1.5, -0.8, 0.42, -3.0]), rtol=1e-6)
  grad = jax.grad(rl.ppo_clip_objective)(logp, old, adv, 0.2)
  # d/dlogp of rho * A is rho * A where the unclipped term is the minimum, else 0.
  np.testing.assert_allclose(grad, np.array([0.0, 1.1 * 1.5, 0.0, 0.6 * 0.7, -3.0]) / 5, rtol=1e-6)
  # No gradient flows into the old log-probabilities or the advantages.
  g_old, g_adv = jax.grad(rl.ppo_clip_objective, argnums=(1, 2))(logp, old, adv, 0.2)
  assert float(jnp.max(jnp.abs(g_old))) == 0.0 and float(jnp.max(jnp.abs(g_adv))) == 0.0


def test_trial_replay_reproduces_the_acting_policy():
  env, gru, params, _ = small_rl2(arms=3, pulls=7)
  trial = rl.trial_rollout(env, gru.apply, rl.categorical, params, gru.initial_carry(),
                           jnp.array([0.2, 0.5, 0.9]), jax.random.key(3))
  logits, values = rl.trial_replay(gru.apply, params, gru.initial_carry(), trial)
  assert logits.shape == (7, 3) and values.shape == (7,)
  np.testing.assert_allclose(rl.categorical.log_prob(logits, trial.actions), trial.log_probs,
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(values, trial.values, rtol=1e-6, atol=1e-7)
  # A replay with the rewards changed gives other outputs after the first step only.
  other = trial._replace(rewards=1.0 - trial.rewards)
  logits2, _ = rl.trial_replay(gru.apply, params, gru.initial_carry(), other)
  np.testing.assert_allclose(logits2[0], logits[0], rtol=1e-6)
  assert float(jnp.max(jnp.abs(logits2[1:] - logits[1:]))) > 1e-4


def test_rl2_step_jit_no_jit_same_seed_and_guard():
  env, _, params, agent = small_rl2(minibatches=2, epochs=2)
  _, _, _, eager = small_rl2(minibatches=2, epochs=2, jit=False)
  state = agent.step.init(jax.random.key(0), params)
  tasks = env.sample_batch(jax.random.key(1), 4)
  s1, m1 = agent.step.update(state, tasks)
  s2, m2 = agent.step.update(state, tasks)  # same seed, same numbers
  s3, m3 = eager.step.update(state, tasks)  # jit equals no jit
  jax.tree.map(np.testing.assert_array_equal, s1.meta_params, s2.meta_params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               s1.meta_params, s3.meta_params)
  np.testing.assert_allclose(m1["return"], m3["return"], rtol=1e-6)
  assert float(m1["finite"]) == 1.0 and int(s1.step) == 1 and int(s1.skipped) == 0
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                       s1.meta_params, params))
  assert max(moved) > 0
  # The trials of the step are those of collect; the metric is their mean total reward.
  trials, adv, returns = agent.collect(params, tasks)
  assert trials.rewards.shape == (4, 6) and adv.shape == returns.shape == (4, 6)
  np.testing.assert_allclose(m1["return"], jnp.mean(jnp.sum(trials.rewards, -1)), rtol=1e-6)
  # At the acting parameters the policy ratio is 1: nothing clipped, KL 0.
  _, aux = agent.loss(params, trials, adv, returns)
  assert float(aux["clip_fraction"]) == 0.0 and abs(float(aux["approx_kl"])) < 1e-7
  # The non-finite guard: NaN parameters are not updated, the skip is counted.
  bad = jax.tree.map(lambda v: v * jnp.nan, params)
  s4, m4 = agent.step.update(agent.step.init(jax.random.key(0), bad), tasks)
  assert float(m4["finite"]) == 0.0 and int(s4.skipped) == 1 and int(s4.step) == 1
  _, _, _, raising = small_rl2(minibatches=2, on_nonfinite="raise")
  with pytest.raises(FloatingPointError, match="non-finite"):
    raising.step.update(raising.step.init(jax.random.key(0), bad), tasks)


def test_rl2_learns_to_exploit_a_two_armed_bandit():
  # Arms (0.1, 0.9) or (0.9, 0.1) at random: a policy that finds the good arm in the first pulls
  # earns far more than the random 0.5 per pull, which is where training starts.
  env, gru, params, agent = small_rl2(arms=2, pulls=10, hidden=16, lr=3e-3, minibatches=2)

  def sample_task(key):
    return jnp.where(jax.random.bernoulli(key), jnp.array([0.1, 0.9]), jnp.array([0.9, 0.1]))

  def sample_batch(key, n):
    k1, k2 = jax.random.split(key)
    return rl.RLTask(jax.random.split(k2, n), jax.vmap(sample_task)(jax.random.split(k1, n)))

  state = agent.step.init(jax.random.key(0), params)
  records = []
  for state, rec in jmeta.fit(agent.step, state, sample_batch, key=jax.random.key(1),
                              iterations=150, meta_batch=32, log_every=50):
    records.append(rec)
  first, last = records[0]["return"], records[-1]["return"]
  assert first < 6.5 and last > 7.5, (first, last)
  out = jmeta.evaluate(agent.learner, state.meta_params, sample_batch, jax.random.key(2),
                       num_tasks=400, steps=(0,), batch_size=200)
  mean, ci = out[0]["return"]
  assert mean - ci > 7.5  # random: 5 per trial


def test_rl2_runs_through_fit_and_evaluate_and_checks_input():
  env, _, params, agent = small_rl2(minibatches=2)
  state = agent.step.init(jax.random.key(0), params)
  (state, rec), = jmeta.fit(agent.step, state, env.sample_batch, key=jax.random.key(1),
                             iterations=3, meta_batch=4, log_every=3)
  assert int(state.step) == 3 and {"return", "entropy", "value_loss", "query_loss"} <= set(rec)
  out = jmeta.evaluate(agent.learner, state.meta_params, env.sample_batch, jax.random.key(2),
                       num_tasks=6, steps=(0,), batch_size=3)
  assert 0 <= out[0]["return"][0] <= 6
  with pytest.raises(ValueError, match="minibatches"):
    agent.step.update(state, env.sample_batch(jax.random.key(0), 3))
  with pytest.raises(ValueError, match="params"):
    agent.step.update(state, rl.RLTask(jax.random.split(jax.random.key(0), 4), jnp.zeros((3, 2))))
  with pytest.raises(ValueError, match="discrete"):
    rl.rl2(rl.point_nav(), lambda *a: a, jnp.zeros(2), optax.adam(1e-3))
  with pytest.raises(ValueError, match="clip_eps"):
    small_rl2(clip_eps=0.0)
  with pytest.raises(ValueError, match="epochs"):
    small_rl2(epochs=0)
  with pytest.raises(TypeError, match="outer_opt"):
    rl.rl2(env, lambda *a: a, jnp.zeros(2), "adam")


# --------------------------------------------------------------------------- baselines


def _brute_force_index(s, f, h, tol=1e-7):
  """The finite-horizon Gittins index by bisection on λ, with an exact recursive calibration."""
  def advantage(lam):
    @functools.lru_cache(None)
    def value(s, f, h):
      if h == 0:
        return 0.0
      p = (s + 1) / (s + f + 2)
      pull = p * (1 + value(s + 1, f, h - 1)) + (1 - p) * value(s, f + 1, h - 1)
      return max(h * lam, pull)
    p = (s + 1) / (s + f + 2)
    return p * (1 + value(s + 1, f, h - 1)) + (1 - p) * value(s, f + 1, h - 1) - h * lam
  lo, hi = 0.0, 1.0
  while hi - lo > tol:
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if advantage(mid) > 0 else (lo, mid)
  return (lo + hi) / 2


def test_gittins_table_against_brute_force():
  table = rl.gittins_table(6, grid=2001)
  assert table.shape == (7, 7, 7)
  for s in range(4):
    for f in range(4):
      np.testing.assert_allclose(table[1, s, f], (s + 1) / (s + f + 2), atol=1e-9)  # one pull left
      for h in range(2, 7 - s - f):
        np.testing.assert_allclose(table[h, s, f], _brute_force_index(s, f, h), atol=2e-4)
  # Exploration is worth more with more pulls left: the index grows with h above the mean.
  assert table[6, 0, 0] > table[3, 0, 0] > table[1, 0, 0] == 0.5
  with pytest.raises(ValueError, match="horizon"):
    rl.gittins_table(0)


def test_bandit_strategies_sanity():
  pulls = 50
  means = jnp.tile(jnp.array([0.9, 0.1]), (400, 1))
  strategies = {"random": rl.random_arms, "ucb1": rl.ucb1, "thompson": rl.thompson,
                "gittins": rl.gittins(rl.gittins_table(pulls, grid=201))}
  totals = rl.bandit_baselines(means, jax.random.key(0), pulls, strategies)
  m = {k: jmeta.mean_ci95(v) for k, v in totals.items()}
  # Random earns the mean arm, 25 per trial; the others find the 0.9 arm (at most 45).
  assert abs(m["random"][0] - 25) < 3 * m["random"][1] + 0.1
  # Regret against always pulling the best arm (45): UCB1's grows like log n (a few pulls of the
  # bad arm cost 0.8 each), Thompson's and the index's are smaller.
  for name in ("ucb1", "thompson", "gittins"):
    assert 40 < m[name][0] <= 45, (name, m[name])
  assert m["thompson"][0] > m["ucb1"][0]
  # UCB1 pulls every arm once first: with one sure arm among sure-fail arms the first 4 pulls
  # pay 1 in all. Then (by hand) the sure arm's score 1 + sqrt(2 ln t / n) stays above the
  # others' sqrt(2 ln t) for t = 4..7 (n = 1..4) and falls below at t = 8 (1.912 < 2.039).
  rewards = rl.ucb1(jnp.array([0.0, 0.0, 1.0, 0.0]), jax.random.key(1), 10)
  assert float(jnp.sum(rewards[:4])) == 1.0
  np.testing.assert_array_equal(rewards[4:9], [1.0, 1.0, 1.0, 1.0, 0.0])
  # On the uniform prior the index strategy beats Thompson sampling (Duan et al., Table 1).
  env = rl.bernoulli_bandit(5, 10)
  tasks = env.sample_batch(jax.random.key(2), 4000)
  totals = rl.bandit_baselines(tasks.params, jax.random.key(3), 10,
                               {"thompson": rl.thompson, "gittins": rl.gittins(rl.gittins_table(10))})
  assert float(np.mean(totals["gittins"] - totals["thompson"])) > 0.4
  assert abs(float(np.mean(totals["gittins"])) - 6.6) < 0.15  # Duan et al.: 6.6
  with pytest.raises(ValueError, match="horizon"):
    rl.gittins(rl.gittins_table(5))(jnp.array([0.5, 0.5]), jax.random.key(0), 10)
