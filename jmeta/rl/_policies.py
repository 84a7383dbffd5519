"""Policies as flax modules used through ``apply(params, obs)``, and their action distributions.

A feed-forward policy maps an observation (or a batch of them) to the
parameters of its action distribution: :class:`GaussianMLP` to ``(mean,
log_std)``, :class:`CategoricalMLP` to logits. A :class:`Distribution`
(:data:`gaussian`, :data:`categorical`) samples actions and scores them from
those parameters. :class:`GRUPolicy` is the recurrent policy of RL²: its
hidden state carries across the episodes of a trial, and it reads the
observation with the previous action, reward and done flag.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class Distribution(NamedTuple):
  """An action distribution as pure functions of the policy's output ``out``.

  Attributes:
    sample: ``sample(key, out) -> action``.
    log_prob: ``log_prob(out, action) -> log density`` (differentiable in ``out``).
    entropy: ``entropy(out) -> entropy``.
    mode: ``mode(out) -> most likely action``.
  """

  sample: Callable[[jax.Array, Any], jax.Array]
  log_prob: Callable[[Any, jax.Array], jax.Array]
  entropy: Callable[[Any], jax.Array]
  mode: Callable[[Any], jax.Array]


def _gaussian_sample(key, out):
  mean, log_std = out
  return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)


def _gaussian_log_prob(out, action):
  mean, log_std = out
  z = (action - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def _gaussian_entropy(out):
  _, log_std = out
  return jnp.sum(log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)


gaussian = Distribution(_gaussian_sample, _gaussian_log_prob, _gaussian_entropy, lambda out: out[0])
"""Diagonal Gaussian over the last axis; ``out = (mean, log_std)``."""


def _categorical_log_prob(logits, action):
  logp = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _categorical_entropy(logits):
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


categorical = Distribution(
    lambda key, logits: jax.random.categorical(key, logits, axis=-1),
    _categorical_log_prob, _categorical_entropy, lambda logits: jnp.argmax(logits, axis=-1))
"""Categorical over the last axis; ``out`` is the logits."""


class GaussianMLP(nn.Module):
  """Gaussian policy: an MLP for the mean, a state-independent log-std parameter.

  ``apply(params, obs)`` with ``obs`` of shape ``(..., obs_size)`` returns
  ``(mean, log_std)`` of shape ``(..., action_size)`` each (use with
  :data:`gaussian`). Finn et al. (2017) use two hidden layers of 100 ReLU
  units for 2D navigation.

  Attributes:
    action_size: action width.
    hidden: hidden widths.
    activation: hidden non-linearity.
    init_log_std: initial log standard deviation.
  """

  action_size: int
  hidden: Sequence[int] = (100, 100)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  init_log_std: float = 0.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = obs
    for i, width in enumerate(self.hidden):
      x = self.activation(nn.Dense(width, name=f"hidden_{i}")(x))
    mean = nn.Dense(self.action_size, name="mean")(x)
    log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                         (self.action_size,), mean.dtype)
    return mean, jnp.broadcast_to(log_std, mean.shape)


class CategoricalMLP(nn.Module):
  """Categorical policy: an MLP from observations to logits (use with :data:`categorical`).

  Attributes:
    actions: number of actions.
    hidden: hidden widths (``()``: a linear map of the observation).
    activation: hidden non-linearity.
  """

  actions: int
  hidden: Sequence[int] = (32, 32)
  activation: Callable[[jax.Array], jax.Array] = nn.tanh

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = obs
    for i, width in enumerate(self.hidden):
      x = self.activation(nn.Dense(width, name=f"hidden_{i}")(x))
    return nn.Dense(self.actions, name="logits")(x)


class GRUPolicy(nn.Module):
  """The recurrent policy of RL² (Duan et al. 2016): a GRU over the whole trial.

  ``apply(params, carry, obs, prev_action, prev_reward, prev_done)`` returns
  ``(carry, logits, value)``: the input is the observation, the one-hot
  previous action, the previous reward and done flag; the hidden state is not
  reset at episode boundaries (only at the start of a trial, with
  :meth:`initial_carry`), which is what lets it learn across episodes. A value
  head serves PPO. Works on one step (``obs`` of shape ``(obs_size,)``) or a
  batch (``(batch, obs_size)``).

  Attributes:
    actions: number of (discrete) actions.
    hidden: GRU width (Duan et al.: 256 for bandits).
  """

  actions: int
  hidden: int = 256

  @nn.compact
  def __call__(self, carry: jax.Array, obs: jax.Array, prev_action: jax.Array,
               prev_reward: jax.Array, prev_done: jax.Array):
    dtype = obs.dtype
    x = jnp.concatenate([
        obs, jax.nn.one_hot(prev_action, self.actions, dtype=dtype),
        jnp.asarray(prev_reward, dtype)[..., None], jnp.asarray(prev_done, dtype)[..., None]],
        axis=-1)
    carry, h = nn.GRUCell(self.hidden, name="gru")(carry, x)
    logits = nn.Dense(self.actions, name="logits")(h)
    value = nn.Dense(1, name="value")(h)[..., 0]
    return carry, logits, value

  def initial_carry(self, batch_shape: tuple[int, ...] = (), dtype=None) -> jax.Array:
    """The zero hidden state at the start of a trial (default float dtype unless given)."""
    return jnp.zeros((*batch_shape, self.hidden), dtype)
