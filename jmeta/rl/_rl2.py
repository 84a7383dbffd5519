"""RL² trials (Duan et al. 2016): a recurrent policy run over several episodes of one task.

Only the rollout exists so far (the PPO trainer of RL² is not written yet):
:func:`trial_rollout` runs ``env.trial_episodes`` episodes of one task in one
``lax.scan``, feeding the previous action, reward and done flag back to the
policy and never resetting its hidden state inside the trial.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jmeta.rl._envs import Env
from jmeta.rl._policies import Distribution


class TrialStep(NamedTuple):
  """One trial, every leaf with a leading axis of ``trial_episodes * horizon`` steps.

  Attributes:
    obs, actions, rewards, dones: as in ``Trajectory``.
    log_probs: log-probability of each action under the acting policy.
    values: the policy's value estimates.
  """

  obs: jax.Array
  actions: jax.Array
  rewards: jax.Array
  dones: jax.Array
  log_probs: jax.Array
  values: jax.Array


def trial_rollout(env: Env, apply_fn: Callable, dist: Distribution, params: Any, carry: jax.Array,
                  task: Any, key: jax.Array) -> TrialStep:
  """One RL² trial: ``env.trial_episodes`` episodes of ``task`` with one recurrent state.

  Args:
    env: a discrete-action env (the bandits: one pull per episode).
    apply_fn: ``apply_fn(params, carry, obs, prev_action, prev_reward, prev_done)
      -> (carry, dist_params, value)`` (``GRUPolicy(...).apply``).
    dist: the action distribution (``categorical``).
    params: policy parameters (no gradient flows through the trial).
    carry: the initial hidden state (``GRUPolicy.initial_carry()``).
    task: the task, the same for every episode of the trial.
    key: PRNG key.

  Returns:
    A :class:`TrialStep` of ``trial_episodes * horizon`` steps. At an episode's
    end the env is reset (new key, same task); the hidden state is kept.
  """
  params = jax.lax.stop_gradient(params)
  steps = env.trial_episodes * env.horizon
  reset_key, key = jax.random.split(key)
  state, obs = env.reset(reset_key, task)
  no_action = (jnp.zeros((), jnp.int32) if env.discrete
               else jnp.zeros((env.action_size,), obs.dtype))

  def body(c, k):
    state, obs, h, action, reward, done = c
    act_key, reset_key = jax.random.split(k)
    h, out, value = apply_fn(params, h, obs, action, reward, done)
    new_action = dist.sample(act_key, out).astype(no_action.dtype)
    logp = dist.log_prob(out, new_action)
    state, next_obs, new_reward, new_done = env.step(state, new_action)
    fresh_state, fresh_obs = env.reset(reset_key, task)
    state = jax.tree.map(lambda a, b: jnp.where(new_done, a, b), fresh_state, state)
    new_reward = jnp.asarray(new_reward, obs.dtype)
    next_obs = jnp.where(new_done, fresh_obs, next_obs)
    record = TrialStep(obs, new_action, new_reward, new_done, logp, value)
    return (state, next_obs, h, new_action, new_reward, new_done), record

  init = (state, obs, carry, no_action, jnp.zeros((), obs.dtype), jnp.asarray(False))
  _, trial = jax.lax.scan(body, init, jax.random.split(key, steps))
  return jax.lax.stop_gradient(trial)
