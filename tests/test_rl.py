"""jmeta.rl: environments, policies, rollouts, estimators and the MAML-RL meta-iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jmeta import rl


def small_nav():
  env = rl.point_nav(horizon=6)
  policy = rl.GaussianMLP(2, hidden=(8,))
  params = policy.init(jax.random.key(0), jnp.zeros((2,)))
  return env, policy, params


# --------------------------------------------------------------------------- environments


def test_point_nav_dynamics_reward_and_horizon():
  env = rl.point_nav(horizon=3)
  goal = jnp.array([0.25, -0.4])
  state, obs = env.reset(jax.random.key(0), goal)
  np.testing.assert_array_equal(obs, [0.0, 0.0])
  state, obs, reward, done = env.step(state, jnp.array([1.0, -0.05]))  # clipped to 0.1
  np.testing.assert_allclose(obs, [0.1, -0.05])
  np.testing.assert_allclose(reward, -np.hypot(0.15, 0.35))
  assert not done
  state, _, _, done = env.step(state, jnp.zeros(2))
  assert not done
  _, _, _, done = env.step(state, jnp.zeros(2))
  assert done
  goals = jax.vmap(env.sample_task)(jax.random.split(jax.random.key(1), 1000))
  assert goals.shape == (1000, 2) and float(jnp.max(jnp.abs(goals))) <= 0.5
  assert float(jnp.min(goals)) < -0.45 and float(jnp.max(goals)) > 0.45
  oracle = rl.point_nav(observe_goal=True)
  np.testing.assert_array_equal(oracle.reset(jax.random.key(0), goal)[1], [0.0, 0.0, 0.25, -0.4])


def test_point_mass_dynamics():
  env = rl.point_mass(mode="velocity", dt=0.1, damping=1.0, ctrl_cost=0.05)
  target = jnp.array([0.5, 0.0])
  state, obs = env.reset(jax.random.key(0), target)
  np.testing.assert_array_equal(obs, np.zeros(4))
  state, obs, reward, _ = env.step(state, jnp.array([2.0, 0.5]))  # force clipped to (1, 0.5)
  vel = 0.1 * np.array([1.0, 0.5])
  np.testing.assert_allclose(obs, np.concatenate([0.1 * vel, vel]), rtol=1e-6)
  np.testing.assert_allclose(reward, -np.linalg.norm(vel - [0.5, 0.0]) - 0.05 * 1.25, rtol=1e-6)
  # A constant unit force reaches the steady speed 1 / damping.
  for _ in range(200):
    state, obs, _, _ = env.step(state, jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(obs[2:], [1.0, 0.0], atol=1e-6)
  env = rl.point_mass(mode="direction", ctrl_cost=0.0)
  dirs = jax.vmap(env.sample_task)(jax.random.split(jax.random.key(2), 400))
  assert set(np.unique(np.asarray(dirs[:, 0]))) == {-1.0, 1.0} and np.all(dirs[:, 1] == 0)
  state, _ = env.reset(jax.random.key(0), jnp.array([-1.0, 0.0]))
  _, obs, reward, _ = env.step(state, jnp.array([-1.0, 0.0]))
  np.testing.assert_allclose(reward, 0.1, rtol=1e-6)  # moving backwards is rewarded
  speeds = jnp.linalg.norm(jax.vmap(rl.point_mass().sample_task)(
      jax.random.split(jax.random.key(3), 400)), axis=-1)
  assert float(speeds.max()) <= 1.0 and float(speeds.min()) >= 0.0


def test_bernoulli_bandit_pays_its_means():
  env = rl.bernoulli_bandit(arms=3, pulls=10)
  means = jnp.array([0.1, 0.5, 0.9])
  state, obs = env.reset(jax.random.key(0), means)
  np.testing.assert_array_equal(obs, [1.0])

  def pull(state, arm):
    state, _, reward, done = env.step(state, arm)
    return state, (reward, done)

  n = 3000
  _, (rewards, dones) = jax.lax.scan(pull, state, jnp.tile(jnp.arange(3), n))
  assert bool(jnp.all(dones))
  freq = np.asarray(rewards).reshape(n, 3).mean(0)
  se = np.sqrt(np.asarray(means) * (1 - np.asarray(means)) / n)
  assert np.all(np.abs(freq - np.asarray(means)) < 4 * se), freq
  assert env.trial_episodes == 10 and env.horizon == 1 and env.discrete
  tasks = env.sample_batch(jax.random.key(1), 5)
  assert tasks.params.shape == (5, 3) and tasks.key.shape == (5,)


@pytest.mark.parametrize("make", [lambda: rl.point_nav(), lambda: rl.point_mass(),
                                  lambda: rl.bernoulli_bandit()])
def test_env_steps_vmap_and_jit(make):
  env = make()
  tasks = env.sample_batch(jax.random.key(0), 4)
  action = jnp.zeros((4,), jnp.int32) if env.discrete else jnp.full((4, 2), 0.05)

  def go(key, task, a):
    state, _ = env.reset(key, task)
    return env.step(state, a)[1:]

  batched = jax.jit(jax.vmap(go))(tasks.key, tasks.params, action)
  for i in range(4):
    one = go(tasks.key[i], tasks.params[i], action[i])
    for b, o in zip(batched, one):
      np.testing.assert_allclose(b[i], o, rtol=1e-6)


def test_bad_env_arguments():
  with pytest.raises(ValueError, match="horizon"):
    rl.point_nav(horizon=0)
  with pytest.raises(ValueError, match="mode"):
    rl.point_mass(mode="sideways")
  with pytest.raises(ValueError, match="arms"):
    rl.bernoulli_bandit(arms=0)


# --------------------------------------------------------------------------- policies


def test_distributions_log_prob_and_entropy():
  mean, log_std = jnp.array([0.3, -1.0]), jnp.array([-0.5, 0.2])
  action = jnp.array([0.1, 0.4])
  std = np.exp(np.asarray(log_std))
  ref = np.sum(-0.5 * ((np.asarray(action) - np.asarray(mean)) / std) ** 2 - np.log(std)
               - 0.5 * np.log(2 * np.pi))
  np.testing.assert_allclose(rl.gaussian.log_prob((mean, log_std), action), ref, rtol=1e-6)
  np.testing.assert_allclose(rl.gaussian.entropy((mean, log_std)),
                             np.sum(np.log(std) + 0.5 * np.log(2 * np.pi * np.e)), rtol=1e-6)
  samples = jax.vmap(lambda k: rl.gaussian.sample(k, (mean, log_std)))(
      jax.random.split(jax.random.key(0), 20000))
  np.testing.assert_allclose(samples.std(0), std, rtol=0.03)
  logits = jnp.array([0.5, -1.0, 2.0])
  np.testing.assert_allclose(rl.categorical.log_prob(logits, jnp.array(2)),
                             jax.nn.log_softmax(logits)[2], rtol=1e-6)
  p = np.asarray(jax.nn.softmax(logits))
  np.testing.assert_allclose(rl.categorical.entropy(logits), -np.sum(p * np.log(p)), rtol=1e-6)


def test_policies_shapes():
  gauss = rl.GaussianMLP(3, hidden=(4,), init_log_std=-1.0)
  params = gauss.init(jax.random.key(0), jnp.zeros((5,)))
  mean, log_std = gauss.apply(params, jnp.ones((7, 5)))
  assert mean.shape == log_std.shape == (7, 3)
  np.testing.assert_allclose(log_std, -1.0)
  cat = rl.CategoricalMLP(4, hidden=(6,))
  assert cat.apply(cat.init(jax.random.key(0), jnp.zeros((2,))), jnp.ones((9, 2))).shape == (9, 4)


def test_gru_policy_carries_its_state_across_episodes():
  gru = rl.GRUPolicy(actions=3, hidden=8)
  carry = gru.initial_carry()
  params = gru.init(jax.random.key(0), carry, jnp.ones((1,)), jnp.array(0), 0.0, True)
  # The same input after different histories gives different logits: the state is memory.
  step = lambda c, a, r: gru.apply(params, c, jnp.ones((1,)), jnp.array(a), r, True)
  c1, _, _ = step(carry, 0, 1.0)
  c2, _, _ = step(carry, 2, 0.0)
  _, l1, v1 = step(c1, 1, 0.0)
  _, l2, v2 = step(c2, 1, 0.0)
  assert l1.shape == (3,) and v1.shape == ()
  assert float(jnp.max(jnp.abs(l1 - l2))) > 1e-4
  batch = gru.initial_carry((5,))
  out = gru.apply(params, batch, jnp.ones((5, 1)), jnp.zeros((5,), jnp.int32), jnp.zeros(5),
                  jnp.ones(5, bool))
  assert out[0].shape == (5, 8) and out[1].shape == (5, 3) and out[2].shape == (5,)


# --------------------------------------------------------------------------- estimators


def test_returns_gae_and_linear_baseline():
  rng = np.random.default_rng(0)
  rewards = rng.normal(size=(3, 7))
  values = rng.normal(size=(3, 7))
  gamma, lam = 0.9, 0.8
  ret = np.zeros_like(rewards)
  adv = np.zeros_like(rewards)
  acc = np.zeros(3)
  gacc = np.zeros(3)
  for t in reversed(range(7)):
    acc = rewards[:, t] + gamma * acc
    ret[:, t] = acc
    nxt = values[:, t + 1] if t + 1 < 7 else 0.0
    gacc = rewards[:, t] + gamma * nxt - values[:, t] + gamma * lam * gacc
    adv[:, t] = gacc
  np.testing.assert_allclose(rl.discounted_returns(jnp.asarray(rewards), gamma), ret, rtol=1e-6)
  np.testing.assert_allclose(rl.gae(jnp.asarray(rewards), jnp.asarray(values), gamma, lam), adv,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(rl.gae(jnp.asarray(rewards), jnp.asarray(values), gamma, 1.0),
                             ret - values, rtol=1e-5, atol=1e-6)
  obs = rng.normal(size=(3, 7, 2))
  feats = np.asarray(rl.linear_features(jnp.asarray(obs))).reshape(-1, 8)
  coef = np.linalg.solve(feats.T @ feats + 1e-5 * np.eye(8), feats.T @ ret.reshape(-1))
  np.testing.assert_allclose(rl.linear_baseline(jnp.asarray(obs), jnp.asarray(ret)),
                             (feats @ coef).reshape(3, 7), rtol=1e-5, atol=1e-6)


def test_dice_derivatives():
  # Two steps, one parameter per step: logp_t = theta_t (values 0), weights from advantages.
  adv = jnp.array([[2.0, -1.0]])
  gamma = 0.5
  w0, w1 = 2.0 - gamma * -1.0, gamma * -1.0  # gamma^t A_t - gamma^(t+1) A_(t+1)
  f = lambda th: rl.dice_surrogate(th[None], adv, gamma)
  th = jnp.zeros(2)
  np.testing.assert_allclose(f(th), w0 + w1)
  # d/dθ: θ_0 appears in both cumulative sums, θ_1 in the second: (A_0, γ A_1).
  np.testing.assert_allclose(jax.grad(f)(th), [2.0, gamma * -1.0])
  g = jax.grad(lambda th: rl.reinforce_surrogate(th[None], adv, gamma))(th)
  np.testing.assert_allclose(g, [2.0, gamma * -1.0])
  # Second order: exp(θ_0) w_0 + exp(θ_0 + θ_1) w_1 -> Hessian [[w0+w1, w1], [w1, w1]].
  np.testing.assert_allclose(jax.hessian(f)(th), [[w0 + w1, w1], [w1, w1]])
  assert np.allclose(jax.hessian(lambda th: rl.reinforce_surrogate(th[None], adv, gamma))(th), 0)


def test_rollouts_vmap_jit_and_seeds():
  env, policy, params = small_nav()
  tasks = env.sample_batch(jax.random.key(3), 3)
  roll = lambda k, t: rl.rollouts(env, policy.apply, rl.gaussian, params, t, k, 2)
  batched = jax.jit(jax.vmap(roll))(tasks.key, tasks.params)
  assert batched.obs.shape == (3, 2, 6, 2) and batched.rewards.shape == (3, 2, 6)
  for i in range(3):
    one = roll(tasks.key[i], tasks.params[i])
    for b, o in zip(batched, one):
      np.testing.assert_allclose(b[i], o, rtol=1e-6, atol=1e-7)
  again = jax.jit(jax.vmap(roll))(tasks.key, tasks.params)
  np.testing.assert_array_equal(batched.rewards, again.rewards)
  other = jax.jit(jax.vmap(roll))(jax.random.split(jax.random.key(9), 3), tasks.params)
  assert not np.allclose(batched.actions, other.actions)
  # Observations follow the clipped actions; the episode ends on its last step.
  np.testing.assert_allclose(batched.obs[..., 1:, :],
                             np.cumsum(np.clip(batched.actions, -0.1, 0.1), axis=-2)[..., :-1, :],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(batched.dones[0, 0], [False] * 5 + [True])


# --------------------------------------------------------------------------- MAML-RL


def test_maml_rl_jit_vmap_seed_and_meta_iteration():
  env, policy, params = small_nav()
  learner = rl.maml_rl(env, policy.apply, trajectories=3, steps=2)
  tasks = env.sample_batch(jax.random.key(1), 3)
  grads, metrics = jax.jit(jax.vmap(lambda t: learner.task_grad(params, t)))(tasks)
  one_task = jax.jit(lambda t: learner.task_grad(params, t))
  for i in range(3):  # vmap equals a loop
    g, m = one_task(jax.tree.map(lambda v: v[i], tasks))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=2e-4, atol=1e-6), grads, g)
    np.testing.assert_allclose(metrics["return"][i], m["return"], rtol=1e-5)
  # jit equals no jit
  loss, m = learner.task_loss(params, jax.tree.map(lambda v: v[0], tasks))
  np.testing.assert_allclose(m["return"], metrics["return"][0], rtol=1e-5)
  np.testing.assert_allclose(m["return_before"], metrics["return_before"][0], rtol=1e-5)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(grads))
  assert float(jnp.max(jnp.abs(grads["params"]["hidden_0"]["kernel"]))) > 0
  adapted = learner.adapt(params, tasks.key[0], tasks.params[0])
  assert adapted.losses.shape == (2,)

  it = rl.meta_iteration(learner, env, optax.adam(1e-2), meta_batch=3)
  state = it.init(jax.random.key(0), params)
  s1, m1 = it.update(state, jax.random.key(5))
  s2, m2 = it.update(state, jax.random.key(5))  # same seed, same numbers
  jax.tree.map(np.testing.assert_array_equal, s1.meta_params, s2.meta_params)
  assert float(m1["finite"]) == 1.0 and int(s1.step) == 1 and int(s1.skipped) == 0
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), s1.meta_params, params)
  assert max(jax.tree.leaves(moved)) > 0
  # The non-finite guard: a NaN policy is not updated, the skip is counted.
  bad = jax.tree.map(lambda v: v * jnp.nan, params)
  s3, m3 = it.update(it.init(jax.random.key(0), bad), jax.random.key(5))
  assert float(m3["finite"]) == 0.0 and int(s3.skipped) == 1 and int(s3.step) == 1
  raising = rl.meta_iteration(learner, env, optax.adam(1e-2), meta_batch=3, on_nonfinite="raise")
  with pytest.raises(FloatingPointError, match="non-finite"):
    raising.update(raising.init(jax.random.key(0), bad), jax.random.key(5))


def test_maml_rl_bad_arguments():
  env, policy, _ = small_nav()
  with pytest.raises(TypeError, match="env"):
    rl.maml_rl("point-nav", policy.apply)
  with pytest.raises(ValueError, match="estimator"):
    rl.maml_rl(env, policy.apply, estimator="trpo")
  with pytest.raises(ValueError, match="trajectories"):
    rl.maml_rl(env, policy.apply, trajectories=0)
  with pytest.raises(ValueError, match="gamma"):
    rl.maml_rl(env, policy.apply, gamma=1.5)
  with pytest.raises(ValueError, match="baseline"):
    rl.maml_rl(env, policy.apply, baseline="value")
  with pytest.raises(ValueError, match="meta_batch"):
    rl.meta_iteration(rl.maml_rl(env, policy.apply), env, optax.adam(1e-3), meta_batch=0)


def test_rl2_trial_feeds_back_rewards_and_keeps_the_state():
  # A policy whose "hidden state" counts the rewards fed back so far; it pulls arm 0.
  def apply(params, carry, obs, prev_action, prev_reward, prev_done):
    del params, obs
    carry = carry + prev_reward + 10.0 * prev_done.astype(carry.dtype)
    return carry, jnp.array([0.0, -1e9]) + 0 * prev_action, carry

  env = rl.bernoulli_bandit(arms=2, pulls=6)
  trial = rl.trial_rollout(env, apply, rl.categorical, {}, jnp.zeros(()), jnp.array([1.0, 0.0]),
                           jax.random.key(0))
  assert trial.rewards.shape == (6,) and bool(jnp.all(trial.dones))
  np.testing.assert_array_equal(trial.actions, np.zeros(6))
  np.testing.assert_array_equal(trial.rewards, np.ones(6))
  # Not reset between episodes: after t pulls the state has seen t rewards and t dones.
  np.testing.assert_allclose(trial.values, 11.0 * np.arange(6))
  gru = rl.GRUPolicy(actions=2, hidden=4)
  params = gru.init(jax.random.key(0), gru.initial_carry(), jnp.ones((1,)), jnp.array(0), 0.0, True)
  trial = rl.trial_rollout(env, gru.apply, rl.categorical, params, gru.initial_carry(),
                           jnp.array([0.3, 0.7]), jax.random.key(1))
  assert trial.log_probs.shape == (6,) and bool(jnp.all(trial.log_probs <= 0))


# --------------------------------------------------------------------------- ProMP's outer objective


def test_promp_first_outer_gradient_is_maml_rl_dice_and_later_steps_clip():
  env, policy, params = small_nav()
  learner = rl.maml_rl(env, policy.apply, trajectories=3, steps=1)
  tasks = env.sample_batch(jax.random.key(1), 2)
  # SGD of rate 1: the first outer update is minus the mean DiCE meta-gradient itself.
  it = rl.promp_iteration(env, policy.apply, optax.sgd(1.0), meta_batch=2, outer_steps=1,
                          trajectories=3, steps=1)
  state = it.init(jax.random.key(0), params)
  new, metrics = it.step.update(state, tasks)
  grads, m = jax.vmap(lambda t: learner.task_grad(params, t))(tasks)
  expected = jax.tree.map(lambda p, g: p - jnp.mean(g, 0), params, grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8),
               new.meta_params, expected)
  np.testing.assert_allclose(metrics["return"], jnp.mean(m["return"]), rtol=1e-6)
  np.testing.assert_allclose(metrics["return_before"], jnp.mean(m["return_before"]), rtol=1e-6)
  assert float(metrics["clip_fraction"]) == 0.0  # at θ_old every ratio is 1
  # Big outer steps move the adapted policy beyond the clip: a fraction of the ratios is clipped,
  # and the clipped terms stop pushing (the update stays finite).
  big = rl.promp_iteration(env, policy.apply, optax.sgd(30.0), meta_batch=2, outer_steps=3,
                           clip_eps=0.05, trajectories=3, steps=1)
  _, m_big = big.step.update(big.init(jax.random.key(0), params), tasks)
  assert 0.0 < float(m_big["clip_fraction"]) <= 1.0 and float(m_big["finite"]) == 1.0
  # The guard: NaN parameters are not updated, the skip is counted.
  bad = jax.tree.map(lambda v: v * jnp.nan, params)
  s2, m2 = it.step.update(it.init(jax.random.key(0), bad), tasks)
  assert float(m2["finite"]) == 0.0 and int(s2.skipped) == 1 and int(s2.step) == 1
  with pytest.raises(ValueError, match="estimator"):
    rl.promp_iteration(env, policy.apply, optax.sgd(1.0), estimator="exact")
  with pytest.raises(ValueError, match="clip_eps"):
    rl.promp_iteration(env, policy.apply, optax.sgd(1.0), clip_eps=1.5)
