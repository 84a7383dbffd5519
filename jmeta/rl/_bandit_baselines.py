"""Classical Bernoulli-bandit strategies, the references of Duan et al. (2016), Table 1.

Each strategy is a pure, ``jit``- and ``vmap``-able function
``strategy(means, key, pulls) -> rewards`` (shape ``(pulls,)``) that plays one
trial of ``pulls`` pulls on arms of success probabilities ``means`` in one
``lax.scan``, from the counts of successes and failures of each arm:

* :func:`random_arms`: a uniformly random arm every pull;
* :func:`ucb1`: each arm once, then ``argmax mean + sqrt(2 ln t / n)`` (Auer et
  al. 2002);
* :func:`thompson`: a draw of each arm's ``Beta(1 + s, 1 + f)`` posterior,
  ``argmax`` (Thompson 1933);
* :func:`gittins`: ``argmax`` of a finite-horizon Gittins index (the
  Bayes-optimal calibration of each arm alone against a known arm over the
  pulls left), from :func:`gittins_table` (dynamic programming on the Beta
  posteriors, uniform prior).

:func:`bandit_baselines` evaluates them on the same arms (and keys) as a
learned policy.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Strategy = Callable[[jax.Array, jax.Array, int], jax.Array]


def _play(choose: Callable, means: jax.Array, key: jax.Array, pulls: int) -> jax.Array:
  """Runs ``choose(t, successes, failures, key) -> arm`` for ``pulls`` pulls."""
  k = means.shape[-1]
  zeros = jnp.zeros((k,), means.dtype)

  def body(c, inputs):
    s, f = c
    t, key = inputs
    choose_key, pay_key = jax.random.split(key)
    arm = choose(t, s, f, choose_key)
    reward = jax.random.bernoulli(pay_key, means[arm]).astype(means.dtype)
    hit = jax.nn.one_hot(arm, k, dtype=means.dtype)
    return (s + hit * reward, f + hit * (1 - reward)), reward

  _, rewards = jax.lax.scan(body, (zeros, zeros),
                            (jnp.arange(pulls), jax.random.split(key, pulls)))
  return rewards


def _argmax_random_ties(key: jax.Array, scores: jax.Array) -> jax.Array:
  noise = jax.random.uniform(key, scores.shape, scores.dtype, maxval=1e-6)
  return jnp.argmax(scores + noise)


def random_arms(means: jax.Array, key: jax.Array, pulls: int) -> jax.Array:
  """A uniformly random arm every pull (expected total ``pulls * mean(means)``)."""
  return _play(lambda t, s, f, k: jax.random.randint(k, (), 0, means.shape[-1]), means, key, pulls)


def ucb1(means: jax.Array, key: jax.Array, pulls: int) -> jax.Array:
  """UCB1 (Auer et al. 2002): each arm once, then ``argmax s/n + sqrt(2 ln t / n)``."""
  def choose(t, s, f, k):
    n = s + f
    bonus = jnp.sqrt(2 * jnp.log(jnp.maximum(t, 1).astype(s.dtype)) / jnp.maximum(n, 1))
    score = jnp.where(n > 0, s / jnp.maximum(n, 1) + bonus, jnp.inf)
    return _argmax_random_ties(k, jnp.where(jnp.isinf(score), 1e9, score))
  return _play(choose, means, key, pulls)


def thompson(means: jax.Array, key: jax.Array, pulls: int) -> jax.Array:
  """Thompson sampling with the uniform prior: ``argmax`` of a ``Beta(1 + s, 1 + f)`` draw per arm."""
  return _play(lambda t, s, f, k: jnp.argmax(jax.random.beta(k, 1 + s, 1 + f)), means, key, pulls)


def gittins_table(horizon: int, *, grid: int = 501) -> np.ndarray:
  """Finite-horizon Gittins indices of a Bernoulli arm with a uniform prior.

  ``table[h, s, f]`` is the known reward ``λ`` per pull at which, with ``h``
  pulls left and ``s`` successes and ``f`` failures seen, pulling the arm
  (and then choosing optimally between it and the known arm) is as good as
  taking ``λ`` for the ``h`` pulls. The value of the calibration problem,
  ``V(h, s, f) = max(h λ, p (1 + V(h-1, s+1, f)) + (1 - p) V(h-1, s, f+1))``
  with ``p = (s + 1) / (s + f + 2)``, is computed by dynamic programming for
  every ``λ`` of a uniform grid on ``[0, 1]`` at once, and the index is
  interpolated where pulling stops being better than retiring. With one pull
  left the index is the posterior mean.

  Args:
    horizon: the largest number of pulls left (a trial's pulls).
    grid: grid points of ``λ``.

  Returns:
    ``float64`` array of shape ``(horizon + 1, horizon + 1, horizon + 1)``
    (entries with ``s + f + h > horizon`` are never needed but filled).
  """
  if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
    raise ValueError(f"horizon must be a positive int; got {horizon!r}.")
  lam = np.linspace(0.0, 1.0, grid)[:, None, None]
  n = horizon + 1
  s = np.arange(n + 1)[:, None]
  f = np.arange(n + 1)[None, :]
  p = (s + 1) / (s + f + 2)
  value = np.zeros((grid, n + 1, n + 1))  # V(0, ., .) = 0
  table = np.zeros((n, n, n))
  for h in range(1, n):
    up = np.pad(value[:, 1:, :], ((0, 0), (0, 1), (0, 0)))
    right = np.pad(value[:, :, 1:], ((0, 0), (0, 0), (0, 1)))
    pull = p * (1 + up) + (1 - p) * right
    advantage = pull - h * lam  # decreasing in λ
    value = np.maximum(h * lam, pull)
    # The index: the λ where the advantage of pulling crosses 0 (linear interpolation).
    adv = advantage[:, :n, :n]
    above = adv > 0
    i = np.clip(np.sum(above, axis=0) - 1, 0, grid - 2)
    a0 = np.take_along_axis(adv, i[None], 0)[0]
    a1 = np.take_along_axis(adv, i[None] + 1, 0)[0]
    l0 = lam[i, 0, 0]
    step = lam[1, 0, 0] - lam[0, 0, 0]
    frac = np.where(a0 > a1, a0 / np.where(a0 > a1, a0 - a1, 1.0), 0.0)
    table[h] = np.clip(l0 + np.clip(frac, 0.0, 1.0) * step, 0.0, 1.0)
  return table


def gittins(table: np.ndarray) -> Strategy:
  """The index strategy of :func:`gittins_table`: ``argmax`` of each arm's index at the pulls left."""
  index = jnp.asarray(table)
  horizon = index.shape[0] - 1

  def play(means: jax.Array, key: jax.Array, pulls: int) -> jax.Array:
    if pulls > horizon:
      raise ValueError(f"pulls ({pulls}) exceeds the table's horizon ({horizon}).")
    def choose(t, s, f, k):
      left = pulls - t
      scores = index[left, s.astype(jnp.int32), f.astype(jnp.int32)].astype(means.dtype)
      return _argmax_random_ties(k, scores)
    return _play(choose, means, key, pulls)

  return play


def bandit_baselines(means: jax.Array, key: jax.Array, pulls: int,
                     strategies: dict[str, Strategy]) -> dict[str, np.ndarray]:
  """Total reward per trial of each strategy on the same arms ``means`` ``(tasks, arms)``.

  Every strategy sees the same tasks and the same per-task keys.

  Returns:
    ``{name: totals}`` with ``totals`` of shape ``(tasks,)``.
  """
  keys = jax.random.split(key, means.shape[0])
  out = {}
  for name, play in strategies.items():
    run = jax.jit(jax.vmap(lambda m, k, play=play: jnp.sum(play(m, k, pulls))))
    out[name] = np.asarray(run(means, keys))
  return out
