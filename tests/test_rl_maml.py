"""MAML-RL's meta-gradient against closed forms on a one-step two-armed bandit.

The policy is a softmax over two logits θ; arm 0 pays 1, arm 1 pays 0 (a
Bernoulli bandit with means (1, 0)), so ``J(θ) = softmax(θ)_0``. One inner
step of size α on ``N`` pulls gives ``θ' = θ + α ĝ`` with
``ĝ = (k / N) (e_0 - softmax(θ))``, ``k ~ Binomial(N, softmax(θ)_0)`` the pulls
of arm 0. Three exact targets:

* ``F1(θ) = J(θ + α ∇J(θ))`` (Finn et al.'s objective), which the DiCE
  estimator approaches as ``N`` grows;
* ``F2(θ) = E_k[J(θ + α ĝ(k))]`` (the expected return after the sampled
  adaptation), of which ``estimator="exact"`` is an unbiased gradient;
* the exact expectation of the DiCE estimator at small ``N`` (a sum over k).

Means over many fixed keys are compared with z-scores; the estimators that
drop the second-order terms (first order, plain REINFORCE inner surrogate)
are many standard errors away.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import gammaln

from jmeta import rl

MEANS = jnp.array([1.0, 0.0])
THETA = jnp.array([0.3, -0.2])
ALPHA = 2.0
E0 = jnp.array([1.0, 0.0])
ENV = rl.bernoulli_bandit(arms=2, pulls=1)


def logits(p, obs):
  return jnp.broadcast_to(p, obs.shape[:-1] + (2,))


def J(t):
  return jax.nn.softmax(t) @ MEANS


def F1(t):
  return J(t + ALPHA * jax.grad(J)(t))


def binomial(t, n):
  pi = jax.nn.softmax(t)
  k = jnp.arange(n + 1)
  logc = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
  return k, jnp.exp(logc + k * jnp.log(pi[0]) + (n - k) * jnp.log(pi[1]))


def adapted(t, k, n):
  return t + ALPHA * (k / n) * (E0 - jax.nn.softmax(t))


def F2(t, n):
  k, w = binomial(t, n)
  return w @ jax.vmap(lambda kk: J(adapted(t, kk, n)))(k)


def dice_expectation(t, n):
  """E_k[∇J(θ')ᵀ (I + α H(k))], H(k) = (k/n)(∇² log π_0 + ∇ log π_0 ∇ log π_0ᵀ)."""
  k, w = binomial(t, n)
  logp0 = lambda u: jax.nn.log_softmax(u)[0]
  g0, h0 = jax.grad(logp0)(t), jax.hessian(logp0)(t)

  def one(kk):
    h = (kk / n) * (h0 + jnp.outer(g0, g0))
    return jax.grad(J)(adapted(t, kk, n)) @ (jnp.eye(2) + ALPHA * h)

  return w @ jax.vmap(one)(k)


def estimate(n, samples, configs):
  """Means and standard errors of the meta-gradient of J (ascent direction) over ``samples`` keys.

  One compiled program for every configuration (``maml_rl`` options) in ``configs``.
  """
  learners = [rl.maml_rl(ENV, logits, inner_lr=ALPHA, trajectories=n, baseline=None, gamma=1.0,
                         **kw) for kw in configs]
  keys = jax.random.split(jax.random.key(0), samples)
  grads = jax.jit(jax.vmap(lambda k: [l.task_grad(THETA, rl.RLTask(k, MEANS))[0]
                                      for l in learners]))(keys)
  out = []
  for g in grads:
    g = -np.asarray(g)  # task_grad descends minus the return
    out.append((g.mean(0), g.std(0, ddof=1) / np.sqrt(samples)))
  return out


def z(mean, se, target):
  return np.abs(mean - np.asarray(target)) / se


def test_meta_gradients_against_closed_forms_at_few_pulls():
  n = 4
  (exact, exact_se), (dice, dice_se), (reinforce, reinforce_se), (first, first_se) = estimate(
      n, 20000, [{"estimator": "exact"}, {"estimator": "dice"}, {"estimator": "reinforce"},
                 {"estimator": "exact", "first_order": True}])
  f2 = jax.grad(F2)(THETA, n)
  # "exact" is an unbiased gradient of the expected post-adaptation return.
  assert np.all(z(exact, exact_se, f2) < 4), (exact, exact_se, f2)
  # DiCE has the expectation of its closed form ...
  assert np.all(z(dice, dice_se, dice_expectation(THETA, n)) < 4)
  # ... which is not F2's gradient at few pulls: it linearises the score of the pre-rollouts.
  assert np.all(z(dice, dice_se, f2) > 8)
  # Without the second-order terms the estimates are many standard errors off (the targets
  # are exact: the error is the estimate's own).
  for mean, se in ((reinforce, reinforce_se), (first, first_se)):
    assert np.all(z(mean, se, f2) > 20), (mean, se, f2)
    assert np.all(z(mean, se, dice_expectation(THETA, n)) > 20)


def test_dice_matches_finn_objective_with_many_pulls():
  (dice, dice_se), (reinforce, reinforce_se), (first, first_se) = estimate(
      300, 1000, [{}, {"estimator": "reinforce"}, {"first_order": True}])
  target = jax.grad(F1)(THETA)
  assert np.all(z(dice, dice_se, target) < 4), (dice, dice_se, target)
  for mean, se in ((reinforce, reinforce_se), (first, first_se)):
    assert np.all(z(mean, se, target) > 50), (mean, se, target)
