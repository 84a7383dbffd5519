"""Rollouts as ``lax.scan`` over time, and the policy-gradient estimators of MAML-RL.

* :func:`rollout` / :func:`rollouts`: one trajectory (a ``scan`` of
  ``env.step`` over the horizon) / ``n`` of them (``vmap`` over keys).
* :func:`linear_baseline`: the linear feature baseline of Duan et al. (2016),
  fitted by ridge regression to the returns of a batch of trajectories.
* :func:`gae`: generalised advantage estimation (Schulman et al. 2016).
* :func:`dice_surrogate`: DiCE (Foerster et al. 2018) with the baseline of Mao
  et al. (2019): a surrogate whose derivatives of every order are estimates of
  those of the expected discounted return.
* :func:`reinforce_surrogate`: the plain score-function surrogate (same first
  derivative, wrong second ones).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jmeta.rl._envs import Env
from jmeta.rl._policies import Distribution


class Trajectory(NamedTuple):
  """A trajectory (leading axes: ``(T,)``; a batch of them: ``(n, T)``).

  Attributes:
    obs: observation before each action, ``(T, obs_size)``.
    actions: ``(T, action_size)`` (continuous) or ``(T,)`` ints.
    rewards: ``(T,)``.
    dones: ``(T,)`` bools, true on an episode's last step.
  """

  obs: jax.Array
  actions: jax.Array
  rewards: jax.Array
  dones: jax.Array


def rollout(env: Env, apply_fn: Callable, dist: Distribution, params: Any, task: Any,
            key: jax.Array) -> Trajectory:
  """One episode of ``env.horizon`` steps of the policy ``apply_fn(params, obs)``.

  Actions are sampled (not reparameterised) and carry no gradient: gradients
  flow through the log-probabilities of the estimators, never through a
  trajectory.
  """
  params = jax.lax.stop_gradient(params)
  reset_key, key = jax.random.split(key)
  state, obs = env.reset(reset_key, task)

  def body(carry, k):
    state, obs = carry
    action = dist.sample(k, apply_fn(params, obs))
    state, next_obs, reward, done = env.step(state, action)
    return (state, next_obs), Trajectory(obs, action, reward, done)

  _, traj = jax.lax.scan(body, (state, obs), jax.random.split(key, env.horizon))
  return jax.lax.stop_gradient(traj)


def rollouts(env: Env, apply_fn: Callable, dist: Distribution, params: Any, task: Any,
             key: jax.Array, n: int) -> Trajectory:
  """``n`` independent episodes of one task (``vmap`` of :func:`rollout`), shapes ``(n, T, ...)``."""
  return jax.vmap(lambda k: rollout(env, apply_fn, dist, params, task, k))(
      jax.random.split(key, n))


def log_probs(apply_fn: Callable, dist: Distribution, params: Any, traj: Trajectory) -> jax.Array:
  """Log-probabilities of a batch's actions under ``params``, shape ``(n, T)`` (differentiable)."""
  return dist.log_prob(apply_fn(params, traj.obs), traj.actions)


def discounted_returns(rewards: jax.Array, gamma: float) -> jax.Array:
  """Reward-to-go ``R_t = sum_{s >= t} gamma^(s-t) r_s`` along the last axis."""
  def body(acc, r):
    acc = r + gamma * acc
    return acc, acc
  moved = jnp.moveaxis(rewards, -1, 0)
  _, out = jax.lax.scan(body, jnp.zeros_like(moved[0]), moved, reverse=True)
  return jnp.moveaxis(out, 0, -1)


def linear_features(obs: jax.Array) -> jax.Array:
  """Duan et al.'s baseline features of ``obs`` ``(..., T, d)``: ``o, o^2, t, t^2, t^3, 1``.

  ``o`` is clipped to ``[-10, 10]`` and ``t`` is the step index over 100 (as
  rllab's ``LinearFeatureBaseline``).
  """
  o = jnp.clip(obs, -10.0, 10.0)
  t = jnp.broadcast_to(jnp.arange(obs.shape[-2], dtype=obs.dtype)[:, None] / 100.0,
                       (*obs.shape[:-1], 1))
  return jnp.concatenate([o, o ** 2, t, t ** 2, t ** 3, jnp.ones_like(t)], axis=-1)


def linear_baseline(obs: jax.Array, returns: jax.Array, *, reg: float = 1e-5) -> jax.Array:
  """Fits the linear feature baseline to a batch and returns its values ``(n, T)``.

  Ridge regression of ``returns`` ``(n, T)`` on :func:`linear_features` of
  ``obs`` ``(n, T, d)``, fitted per batch (per task and inner step in
  MAML-RL); no gradient flows through it.
  """
  obs, returns = jax.lax.stop_gradient((obs, returns))
  feats = linear_features(obs)
  f = feats.reshape(-1, feats.shape[-1])
  # Ridge as least squares on [f; sqrt(reg) I] (SVD): features that are constant
  # within a task (an observed goal) make the normal equations singular in float32.
  eye = jnp.sqrt(jnp.asarray(reg, f.dtype)) * jnp.eye(f.shape[-1], dtype=f.dtype)
  y = jnp.concatenate([returns.reshape(-1), jnp.zeros(f.shape[-1], f.dtype)])
  coef = jnp.linalg.lstsq(jnp.concatenate([f, eye]), y)[0]
  return feats @ coef


def gae(rewards: jax.Array, values: jax.Array, gamma: float, lam: float) -> jax.Array:
  """Generalised advantages along the last axis; the episode ends after the horizon (``V_T = 0``)."""
  next_values = jnp.concatenate([values[..., 1:], jnp.zeros_like(values[..., :1])], axis=-1)
  deltas = rewards + gamma * next_values - values
  return discounted_returns(deltas, gamma * lam)


def _discounts(like: jax.Array, gamma: float) -> jax.Array:
  """``gamma^t`` along the last axis, broadcast to the shape of ``like``."""
  return jnp.broadcast_to(gamma ** jnp.arange(like.shape[-1], dtype=like.dtype), like.shape)


def magic_box(x: jax.Array) -> jax.Array:
  """DiCE's operator: evaluates to 1, and ``d/dθ magic_box(x) = magic_box(x) dx/dθ``."""
  return jnp.exp(x - jax.lax.stop_gradient(x))


def dice_surrogate(logp: jax.Array, advantages: jax.Array, gamma: float,
                   old_logp: Optional[jax.Array] = None) -> jax.Array:
  """DiCE surrogate of a batch of trajectories (mean over the batch).

  ``mean_n sum_t magic_box(sum_{s<=t} logp_s) w_t`` with
  ``w_t = gamma^t A_t - gamma^(t+1) A_(t+1)``. Its gradient is the
  policy-gradient estimate ``sum_t grad logp_t gamma^t A_t``. With
  ``A_t = R_t - b_t`` (``gae`` with ``lam=1``) the weights are
  ``gamma^t (r_t + gamma b_(t+1) - b_t)``, and the surrogate is exactly DiCE
  plus the baseline term of Mao et al. (2019): its derivatives of every order
  are unbiased for those of ``E[sum_t gamma^t r_t]`` (for a baseline that does
  not depend on the actions it weighs). ``lam < 1`` adds GAE's bias.

  Args:
    logp: log-probabilities ``(n, T)`` (differentiable).
    advantages: ``(n, T)`` (no gradient).
    gamma: discount.
    old_logp: log-probabilities under the policy that sampled the batch, when
      it is not the one of ``logp`` (ProMP's outer steps re-use a batch): the
      magic box becomes the importance weight ``exp(sum_{s<=t} logp_s -
      old_s)``, equal to it (value and every derivative) where the policies
      agree. ``None``: the batch is on-policy.
  """
  adv = jax.lax.stop_gradient(advantages)
  disc = _discounts(adv, gamma)
  scaled = disc * adv
  weights = scaled - jnp.concatenate([scaled[..., 1:], jnp.zeros_like(scaled[..., :1])], axis=-1)
  if old_logp is None:
    box = magic_box(jnp.cumsum(logp, axis=-1))
  else:
    box = jnp.exp(jnp.cumsum(logp - jax.lax.stop_gradient(old_logp), axis=-1))
  return jnp.mean(jnp.sum(box * weights, axis=-1))


def reinforce_surrogate(logp: jax.Array, advantages: jax.Array, gamma: float) -> jax.Array:
  """The plain score-function surrogate ``mean_n sum_t logp_t gamma^t A_t``.

  Same gradient as :func:`dice_surrogate`; its Hessian lacks the
  ``grad logp grad logp^T`` terms (the dependence of the sampling
  distribution on the parameters), so MAML-RL through it is biased.
  """
  adv = jax.lax.stop_gradient(advantages)
  disc = _discounts(adv, gamma)
  return jnp.mean(jnp.sum(logp * disc * adv, axis=-1))
