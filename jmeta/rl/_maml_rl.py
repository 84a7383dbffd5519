"""MAML-RL (Finn et al. 2017) with DiCE: a ``jmeta.MetaLearner`` and its compiled meta-iteration.

A task is an :class:`RLTask` (the task's parameters and the key of its
rollouts). ``task_loss`` samples ``trajectories`` episodes with the current
policy, takes ``steps`` policy-gradient steps (each on fresh rollouts of the
policy being adapted: a ``lax.scan`` over steps), rolls the adapted policy out
again and returns minus its surrogate return; ``jax.grad`` of it is the
meta-gradient. The meta-iteration is ``jmeta.make_meta_step``'s step (optax
outer update, non-finite guard) with the task batch drawn inside the same
``jit``: sample tasks, roll out, adapt, roll out again, update.

Estimators (``estimator``):

* ``"dice"`` (default): the inner surrogate is DiCE, so the derivative of the
  inner gradient is DiCE's unbiased estimate of the Hessian of the expected
  return. The meta-gradient estimates that of Finn et al.'s objective
  ``J(θ + α ∇J(θ))`` (its only bias comes from evaluating ``∇J(θ')`` at a
  sampled ``θ'``: it vanishes as ``trajectories`` grows).
* ``"exact"``: the inner update ``θ' = θ + α ĝ(θ, τ)`` is the plain
  policy-gradient estimate and the outer surrogate adds the score of the
  pre-adaptation trajectories (DiCE on the whole graph, as E-MAML, Stadie et
  al. 2018): an exactly unbiased gradient of the expected post-adaptation
  return ``E_τ[J(θ + α ĝ(θ, τ))]``, at the price of a high-variance term.
* ``"reinforce"``: the plain surrogate in the inner loop and no score term
  (MAML-RL as often implemented): misses the dependence of the
  pre-adaptation sampling on θ, biased. For comparison.

``first_order=True`` stops the gradient through the inner gradients (and
drops the score term).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner
from jmeta._meta_step import MetaState, MetaStep, make_meta_step
from jmeta.algorithms._gradient_based import check_optimizer, check_steps
from jmeta.rl import _estimators as est
from jmeta.rl._envs import Env, RLTask
from jmeta.rl._policies import Distribution, categorical, gaussian

ESTIMATORS = ("dice", "exact", "reinforce")
BASELINES = ("linear", None)


def _check_unit(value: Any, name: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
    raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}.")
  return float(value)


def batch_advantages(traj: est.Trajectory, gamma: float, gae_lambda: float,
                     baseline: Optional[str], normalize: bool) -> jax.Array:
  """GAE of a batch of trajectories with the baseline fitted to it (no gradient), ``(n, T)``."""
  returns = est.discounted_returns(traj.rewards, gamma)
  if baseline == "linear":
    values = est.linear_baseline(traj.obs, returns)
  else:
    values = jnp.zeros_like(returns)
  adv = est.gae(traj.rewards, values, gamma, gae_lambda)
  if normalize:
    adv = (adv - jnp.mean(adv)) / (jnp.std(adv) + 1e-8)
  return jax.lax.stop_gradient(adv)


def maml_rl(
    env: Env,
    apply_fn: Callable[[Any, jax.Array], Any],
    *,
    dist: Optional[Distribution] = None,
    inner_lr: float = 0.1,
    inner_opt: Optional[optax.GradientTransformation] = None,
    steps: int = 1,
    trajectories: int = 20,
    gamma: float = 0.99,
    gae_lambda: float = 1.0,
    baseline: Optional[str] = "linear",
    estimator: str = "dice",
    first_order: bool = False,
    normalize_advantages: bool = False,
) -> MetaLearner:
  """MAML-RL as a ``MetaLearner`` over :class:`RLTask` batches.

  Args:
    env: the task family (``jmeta.rl.point_nav()``, ...).
    apply_fn: the policy, ``apply_fn(params, obs) -> distribution parameters``
      (e.g. ``GaussianMLP(2).apply``).
    dist: the action distribution; default ``categorical`` for discrete envs,
      ``gaussian`` otherwise.
    inner_lr: step size of the inner policy-gradient ascent (SGD), used when
      ``inner_opt`` is ``None`` (Finn et al.: 0.1 on 2D navigation). The
      surrogates are per time step (divided by ``env.horizon``: rllab's
      policy-gradient loss averages over time steps), so this is Finn et al.'s
      step size.
    inner_opt: any optax optimizer for the inner loop (it minimises minus the
      surrogate).
    steps: inner policy-gradient steps, each on fresh rollouts.
    trajectories: episodes per task per rollout (Finn et al.: 20).
    gamma: discount.
    gae_lambda: GAE's λ (1: Monte-Carlo advantages; exact DiCE).
    baseline: ``"linear"`` (Duan et al.'s feature baseline, fitted per task
      and rollout) or ``None``.
    estimator: ``"dice"``, ``"exact"`` or ``"reinforce"`` (module docstring).
    first_order: drop the second-order terms (stop the gradient through the
      inner gradients).
    normalize_advantages: standardise each rollout batch's advantages (mean
      and standard deviation over the batch, without gradient) before the
      surrogates, as rllab's ``center_adv`` in Finn et al.'s code: the inner
      step's size no longer scales with the task's returns. It rescales (and
      shifts by a batch-dependent baseline) the estimators, so the closed-form
      identities of the module docstring hold only without it.

  Returns:
    A ``MetaLearner``: ``adapt(meta_params, key, task, *, steps=None)``
    (``AdaptResult`` whose ``losses`` are minus the mean return of the
    rollouts of each inner step, shape ``(steps,)``), ``task_loss(meta_params,
    rl_task, step=0, *, steps=None)`` (minus the surrogate; metrics
    ``query_loss``: minus the post-adaptation mean return, ``return``,
    ``return_before``: mean return before adaptation), ``task_grad``.
  """
  if not isinstance(env, Env):
    raise TypeError(f"env must be a jmeta.rl.Env; got {type(env).__name__}.")
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable (params, obs) -> ...; got {type(apply_fn).__name__}.")
  if dist is None:
    dist = categorical if env.discrete else gaussian
  if not isinstance(dist, Distribution):
    raise TypeError(f"dist must be a jmeta.rl.Distribution; got {type(dist).__name__}.")
  if inner_opt is None:
    if isinstance(inner_lr, bool) or not isinstance(inner_lr, (int, float)) or not inner_lr > 0:
      raise ValueError(f"inner_lr must be a positive number; got {inner_lr!r}.")
    inner_opt = optax.sgd(inner_lr)
  check_optimizer(inner_opt)
  default_steps = check_steps(steps)
  if isinstance(trajectories, bool) or not isinstance(trajectories, int) or trajectories < 1:
    raise ValueError(f"trajectories must be a positive int; got {trajectories!r}.")
  gamma = _check_unit(gamma, "gamma")
  gae_lambda = _check_unit(gae_lambda, "gae_lambda")
  if baseline not in BASELINES:
    raise ValueError(f"baseline must be one of {BASELINES}; got {baseline!r}.")
  if estimator not in ESTIMATORS:
    raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}.")
  inner_surrogate = est.dice_surrogate if estimator == "dice" else est.reinforce_surrogate
  score_term = estimator == "exact" and not first_order

  def advantages(traj):
    return batch_advantages(traj, gamma, gae_lambda, baseline, normalize_advantages)

  def sample(params, task, key):
    return est.rollouts(env, apply_fn, dist, params, task, key, trajectories)

  def mean_return(traj):
    return jnp.mean(jnp.sum(traj.rewards, axis=-1))

  def inner(params, key, task, n):
    """``n`` adaptation steps: (adapted params, returns of each step, sum of pre log-probs)."""
    if n == 0:
      zero = jnp.zeros((), jnp.result_type(*jax.tree.leaves(params)))
      return params, jnp.zeros((0,), zero.dtype), zero

    def body(carry, k):
      p, opt_state = carry
      traj = sample(p, task, k)
      adv = advantages(traj)
      grad = jax.grad(lambda q: inner_surrogate(est.log_probs(apply_fn, dist, q, traj), adv,
                                                gamma) / env.horizon)(p)
      if first_order:
        grad = jax.lax.stop_gradient(grad)
      ascent = jax.tree.map(jnp.negative, grad)
      updates, opt_state = inner_opt.update(ascent, opt_state, p)
      ret = mean_return(traj)
      score = jnp.sum(est.log_probs(apply_fn, dist, p, traj)) if score_term else jnp.zeros_like(ret)
      return (optax.apply_updates(p, updates), opt_state), (ret, score)

    (params, _), (rets, scores) = jax.lax.scan(
        body, (params, inner_opt.init(params)), jax.random.split(key, n), unroll=n <= 1)
    return params, rets, jnp.sum(scores)

  def adapt(meta_params, key, task, *, steps: Optional[int] = None) -> AdaptResult:
    n = default_steps if steps is None else check_steps(steps)
    params, rets, _ = inner(meta_params, key, task, n)
    return AdaptResult(params, -rets)

  def task_loss(meta_params, task: RLTask, step=0, *, steps: Optional[int] = None):
    del step
    n = default_steps if steps is None else check_steps(steps)
    inner_key, post_key = jax.random.split(task.key)
    adapted, rets, pre_logp = inner(meta_params, inner_key, task.params, n)
    traj = sample(adapted, task.params, post_key)
    surrogate = est.dice_surrogate(est.log_probs(apply_fn, dist, adapted, traj),
                                   advantages(traj), gamma)
    if score_term:
      # Score of the pre-adaptation rollouts times the post-adaptation return:
      # (magic - 1) is 0 in value, its gradient is that of the log-probabilities.
      value = jnp.mean(est.discounted_returns(traj.rewards, gamma)[..., 0])
      surrogate = surrogate + (est.magic_box(pre_logp) - 1.0) * jax.lax.stop_gradient(value)
    ret = mean_return(traj)
    metrics = {"query_loss": -ret, "return": ret, "return_before": rets[0] if n else ret}
    return -surrogate / env.horizon, metrics

  def task_grad(meta_params, task: RLTask, step=0):
    return jax.grad(task_loss, has_aux=True)(meta_params, task, step)

  def init(key, params):
    del key
    return params

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad)


class MetaIteration(NamedTuple):
  """The compiled meta-iteration of a meta-RL learner.

  Attributes:
    init: ``init(key, params) -> MetaState``.
    update: ``update(state, key) -> (state, metrics)``: one ``jit``-compiled
      program that samples ``meta_batch`` tasks from the env, rolls out,
      adapts, rolls out again and applies the outer optax update (skipping a
      non-finite one and counting it in ``state.skipped``).
    step: the underlying ``jmeta.MetaStep``; ``jmeta.fit(step, state,
      env.sample_batch, ...)`` trains in compiled blocks of meta-iterations.
    sample_tasks: ``env.sample_batch``.
  """

  init: Callable[..., MetaState]
  update: Callable[[MetaState, jax.Array], tuple[MetaState, dict[str, jax.Array]]]
  step: MetaStep
  sample_tasks: Callable[[jax.Array, int], RLTask]


def meta_iteration(
    learner: MetaLearner,
    env: Env,
    outer_opt: optax.GradientTransformation,
    *,
    meta_batch: int = 20,
    clip_norm: Optional[float] = None,
    on_nonfinite: str = "skip",
    jit: bool = True,
) -> MetaIteration:
  """Builds the meta-iteration of ``learner`` (e.g. :func:`maml_rl`) on ``env``'s tasks.

  The outer update is a plain optax step on the meta-gradient of the DiCE
  surrogate (vanilla policy-gradient meta-update), through
  ``jmeta.make_meta_step`` (``clip_norm``, non-finite guard).

  Args:
    learner: a ``MetaLearner`` over :class:`RLTask` batches.
    env: the task family.
    outer_opt: optax optimizer of the meta-parameters (e.g. ``optax.adam(1e-3)``).
    meta_batch: tasks per meta-iteration (Finn et al.: 20 on 2D navigation).
    clip_norm: clip the meta-gradient's global norm (``None``: no).
    on_nonfinite: ``"skip"`` or ``"raise"`` (``FloatingPointError`` from ``update``).
    jit: compile ``update``.

  Returns:
    A :class:`MetaIteration`.
  """
  if not isinstance(env, Env):
    raise TypeError(f"env must be a jmeta.rl.Env; got {type(env).__name__}.")
  if isinstance(meta_batch, bool) or not isinstance(meta_batch, int) or meta_batch < 1:
    raise ValueError(f"meta_batch must be a positive int; got {meta_batch!r}.")
  step = make_meta_step(learner, outer_opt, clip_norm=clip_norm, on_nonfinite=on_nonfinite,
                        task_map="vmap", jit=False)

  def run(state, key):
    return step.step_fn(state, env.sample_batch(key, meta_batch))

  compiled = jax.jit(run) if jit else run

  def update(state: MetaState, key: jax.Array):
    new, metrics = compiled(state, key)
    if on_nonfinite == "raise" and not bool(metrics["finite"]):
      raise FloatingPointError(
          f"non-finite meta-iteration {int(state.step)}: query_loss="
          f"{float(metrics['query_loss'])}, grad_norm={float(metrics['grad_norm'])};"
          " the update was not applied.")
    return new, metrics

  return MetaIteration(init=step.init, update=update, step=step, sample_tasks=env.sample_batch)
