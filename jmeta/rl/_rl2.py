"""RL² (Duan et al. 2016): a recurrent policy trained with PPO across whole trials.

A trial is ``env.trial_episodes`` episodes of one task run by one recurrent
policy whose hidden state is never reset inside the trial; it reads the
previous action, reward and done flag, so it can learn to explore and exploit
within the trial (:func:`trial_rollout`: one ``lax.scan``). Training is PPO
(Schulman et al. 2017) with the trial as the RL episode: GAE runs over the
whole trial (the discount does not stop at an episode's end), the clipped
surrogate, a value loss and an entropy bonus are minimised over ``epochs``
passes of ``minibatches`` minibatches of whole trials (each recomputed by
:func:`trial_replay` through the GRU), every pass an optax update. Rolling out
the task batch, the advantages and all PPO updates are one compiled step
(:func:`rl2`'s ``step``: a ``jmeta.MetaStep`` that ``jmeta.fit`` and the
trainer drive like any other, with the non-finite guard).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner
from jmeta._inner import tree_where
from jmeta._meta_step import MetaState, MetaStep
from jmeta._validate import abstract, check_float_tree, tree_mismatch
from jmeta.rl._envs import Env, RLTask, check_rl_batch
from jmeta.rl._estimators import gae
from jmeta.rl._policies import Distribution, categorical


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


def _no_action(env: Env, dtype) -> jax.Array:
  return jnp.zeros((), jnp.int32) if env.discrete else jnp.zeros((env.action_size,), dtype)


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
  no_action = _no_action(env, obs.dtype)

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


def trial_replay(apply_fn: Callable, params: Any, carry: jax.Array,
                 trial: TrialStep) -> tuple[Any, jax.Array]:
  """The policy's outputs along a recorded trial (differentiable in ``params``).

  Feeds the recorded observations and the previous actions, rewards and done
  flags through the recurrent policy from ``carry``, as :func:`trial_rollout`
  did when it acted. Returns ``(dist_params, values)`` with a leading time
  axis; at the acting parameters they reproduce the trial's log-probabilities
  and values.
  """
  def shift(x, first):
    return jnp.concatenate([jnp.broadcast_to(first, x[:1].shape).astype(x.dtype), x[:-1]])

  prev = (shift(trial.actions, 0), shift(trial.rewards, 0), shift(trial.dones, False))

  def body(h, inputs):
    obs, a, r, d = inputs
    h, out, value = apply_fn(params, h, obs, a, r, d)
    return h, (out, value)

  _, (outs, values) = jax.lax.scan(body, carry, (trial.obs, *prev))
  return outs, values


def ppo_clip_objective(logp: jax.Array, old_logp: jax.Array, advantages: jax.Array,
                       clip_eps: float) -> jax.Array:
  """PPO's clipped surrogate ``mean(min(ρ A, clip(ρ, 1 - ε, 1 + ε) A))``, ``ρ = exp(logp - old)``.

  To be maximised; the gradient in ``logp`` is ``ρ A / N`` where the unclipped
  term is the smaller one, else 0 (Schulman et al. 2017, Eq. 7).
  """
  ratio = jnp.exp(logp - jax.lax.stop_gradient(old_logp))
  adv = jax.lax.stop_gradient(advantages)
  return jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * adv))


class RL2(NamedTuple):
  """RL² as pure functions (made by :func:`rl2`).

  Attributes:
    learner: a ``jmeta.MetaLearner`` for ``jmeta.evaluate``: ``task_loss`` runs
      one fresh trial of the task (metrics ``return``: the trial's total
      reward, ``query_loss``: minus it); its gradient is the one-epoch,
      unclipped actor-critic gradient.
    step: the ``jmeta.MetaStep`` of one PPO iteration on a task batch (for
      ``jmeta.fit`` and the trainer).
    collect: ``collect(params, tasks) -> (trials, advantages, returns)``: one
      trial per task of an :class:`RLTask` batch, shapes ``(tasks, T)``.
    loss: ``loss(params, trials, advantages, returns) -> (loss, metrics)``:
      minus the clipped surrogate, plus ``value_coef`` times the value loss,
      minus ``entropy_coef`` times the entropy, on a batch of trials.
  """

  learner: MetaLearner
  step: MetaStep
  collect: Callable
  loss: Callable


def _check_number(value: Any, name: str, low: float, high: float = float("inf"),
                  low_open: bool = False) -> float:
  if (isinstance(value, bool) or not isinstance(value, (int, float))
      or not (value > low if low_open else value >= low) or not value <= high):
    raise ValueError(f"{name} must be a number in {'(' if low_open else '['}{low}, {high}];"
                     f" got {value!r}.")
  return float(value)


def _check_int(value: Any, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be a positive int; got {value!r}.")
  return value


def rl2(
    env: Env,
    apply_fn: Callable,
    initial_carry: jax.Array,
    outer_opt: optax.GradientTransformation,
    *,
    dist: Optional[Distribution] = None,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
    clip_eps: float = 0.2,
    epochs: int = 4,
    minibatches: int = 4,
    entropy_coef: float = 0.01,
    value_coef: float = 0.5,
    clip_norm: Optional[float] = 1.0,
    normalize_advantages: bool = True,
    on_nonfinite: str = "skip",
    jit: bool = True,
) -> RL2:
  """RL² with PPO across trials (Duan et al. 2016; Schulman et al. 2017).

  Args:
    env: a discrete task family with ``trial_episodes`` episodes per trial
      (``jmeta.rl.bernoulli_bandit(arms, pulls)``).
    apply_fn: the recurrent policy, ``apply_fn(params, carry, obs, prev_action,
      prev_reward, prev_done) -> (carry, logits, value)`` (``GRUPolicy.apply``).
    initial_carry: its hidden state at the start of a trial
      (``GRUPolicy.initial_carry()``).
    outer_opt: the optax optimizer of the policy (e.g. ``optax.adam(1e-3)``).
    dist: the action distribution (default ``categorical``).
    gamma: discount over the whole trial.
    gae_lambda: GAE's λ over the whole trial.
    clip_eps: PPO's ratio clip ε.
    epochs: passes over each batch of trials.
    minibatches: minibatches (of whole trials) per pass; must divide the
      number of tasks per step.
    entropy_coef: weight of the entropy bonus.
    value_coef: weight of the value loss.
    clip_norm: clip each minibatch gradient's global norm (``None``: no).
    normalize_advantages: standardise the advantages over the batch.
    on_nonfinite: ``"skip"`` (a step whose loss, gradients or new parameters
      are not finite leaves the state unchanged but for ``step`` and
      ``skipped``) or ``"raise"`` (``step.update`` raises
      ``FloatingPointError``).
    jit: compile ``step.update``.

  Returns:
    An :class:`RL2`. ``step.step_fn(state, tasks)`` is one PPO iteration on an
    :class:`RLTask` batch; metrics: ``return`` (mean total reward per trial),
    ``query_loss`` (minus it), ``entropy``, ``value_loss``, ``approx_kl``,
    ``clip_fraction``, ``grad_norm`` (mean over the minibatches), ``finite``,
    ``skipped``, ``bad_labels`` (always 0).
  """
  if not isinstance(env, Env):
    raise TypeError(f"env must be a jmeta.rl.Env; got {type(env).__name__}.")
  if not env.discrete:
    raise ValueError(f"env must have discrete actions for RL² (GRUPolicy); {env.name} is continuous.")
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable; got {type(apply_fn).__name__}.")
  if not (hasattr(outer_opt, "init") and hasattr(outer_opt, "update")):
    raise TypeError(f"outer_opt must be an optax GradientTransformation; got {type(outer_opt).__name__}.")
  dist = categorical if dist is None else dist
  if not isinstance(dist, Distribution):
    raise TypeError(f"dist must be a jmeta.rl.Distribution; got {type(dist).__name__}.")
  gamma = _check_number(gamma, "gamma", 0.0, 1.0)
  gae_lambda = _check_number(gae_lambda, "gae_lambda", 0.0, 1.0)
  clip_eps = _check_number(clip_eps, "clip_eps", 0.0, 1.0, low_open=True)
  epochs, minibatches = _check_int(epochs, "epochs"), _check_int(minibatches, "minibatches")
  entropy_coef = _check_number(entropy_coef, "entropy_coef", 0.0)
  value_coef = _check_number(value_coef, "value_coef", 0.0)
  if clip_norm is not None:
    clip_norm = _check_number(clip_norm, "clip_norm", 0.0, low_open=True)
  if on_nonfinite not in ("skip", "raise"):
    raise ValueError(f"on_nonfinite must be 'skip' or 'raise'; got {on_nonfinite!r}.")
  carry0 = jnp.asarray(initial_carry)

  def one_trial(params, task, key):
    return trial_rollout(env, apply_fn, dist, params, carry0, task, key)

  def advantages_of(trials):
    adv = gae(trials.rewards, trials.values, gamma, gae_lambda)
    return adv, adv + trials.values

  def collect(params, tasks: RLTask):
    trials = jax.vmap(lambda t, k: one_trial(params, t, k))(tasks.params, tasks.key)
    adv, returns = advantages_of(trials)
    return trials, adv, returns

  def loss(params, trials, adv, returns):
    outs, values = jax.vmap(lambda tr: trial_replay(apply_fn, params, carry0, tr))(trials)
    logp = dist.log_prob(outs, trials.actions)
    if normalize_advantages:
      adv = (adv - jnp.mean(adv)) / (jnp.std(adv) + 1e-8)
    objective = ppo_clip_objective(logp, trials.log_probs, adv, clip_eps)
    value_loss = jnp.mean((values - jax.lax.stop_gradient(returns)) ** 2)
    entropy = jnp.mean(dist.entropy(outs))
    total = -objective + value_coef * value_loss - entropy_coef * entropy
    log_ratio = logp - trials.log_probs
    metrics = {"value_loss": value_loss, "entropy": entropy,
               "approx_kl": jnp.mean(jnp.exp(log_ratio) - 1 - log_ratio),
               "clip_fraction": jnp.mean((jnp.abs(jnp.exp(log_ratio) - 1) > clip_eps)
                                         .astype(logp.dtype))}
    return total, metrics

  def task_loss(meta_params, task: RLTask, step=0, *, steps: Optional[int] = None):
    del step, steps  # no inner loop: the trial is the adaptation
    trial = one_trial(meta_params, task.params, task.key)
    adv, returns = advantages_of(trial)
    batch = jax.tree.map(lambda v: v[None], (trial, adv, returns))
    total, metrics = loss(meta_params, *batch)
    ret = jnp.sum(trial.rewards)
    return total, dict(metrics, query_loss=-ret, **{"return": ret})

  def adapt(meta_params, key, task, *, steps: Optional[int] = None) -> AdaptResult:
    del steps
    trial = one_trial(meta_params, task, key)
    return AdaptResult(meta_params, -trial.rewards)

  learner = MetaLearner(init=lambda key, params: params, adapt=adapt, task_loss=task_loss,
                        task_grad=lambda mp, t, step=0: jax.grad(task_loss, has_aux=True)(mp, t))

  def init(key: jax.Array, params: Any) -> MetaState:
    del key
    check_float_tree(params, "params")
    zero = jnp.zeros((), jnp.int32)
    return MetaState(params, outer_opt.init(params), zero, zero)

  def step_fn(state: MetaState, tasks: RLTask):
    params = state.meta_params
    trials, adv, returns = collect(params, tasks)
    n = tasks.key.shape[0]
    if n % minibatches:
      raise ValueError(f"minibatches ({minibatches}) must divide the number of tasks per step ({n}).")
    size = n // minibatches
    shuffle_key = jax.random.fold_in(tasks.key[0], 7)

    def epoch(carry, k):
      def minibatch(carry, idx):
        p, opt_state = carry
        batch = jax.tree.map(lambda v: v[idx], (trials, adv, returns))
        (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(p, *batch)
        norm = optax.tree.norm(grads)
        if clip_norm is not None:
          grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip_norm / (norm + 1e-12)), grads)
        updates, opt_state = outer_opt.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), dict(aux, grad_norm=norm)
      order = jax.random.permutation(k, n).reshape(minibatches, size)
      return jax.lax.scan(minibatch, carry, order)

    (new_params, opt_state), aux = jax.lax.scan(
        epoch, (params, state.opt_state), jax.random.split(shuffle_key, epochs))
    aux = {name: jnp.mean(v) for name, v in aux.items()}
    leaves = jax.tree.leaves((new_params, opt_state, aux))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves
                                if jnp.issubdtype(jnp.result_type(v), jnp.inexact)]))
    new_params = tree_where(finite, new_params, params)
    opt_state = tree_where(finite, opt_state, state.opt_state)
    skipped = state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32)
    ret = jnp.mean(jnp.sum(trials.rewards, axis=-1))
    metrics = dict(aux, query_loss=-ret, finite=finite.astype(jnp.float32), skipped=skipped,
                   bad_labels=jnp.zeros((), ret.dtype), **{"return": ret})
    return MetaState(new_params, opt_state, state.step + 1, skipped), metrics

  seen: dict[str, Any] = {"state": None, "last": None}

  def check(state: Any, tasks: Any):
    tasks = check_rl_batch(tasks, "tasks")
    if tasks.key.shape[0] % minibatches:
      raise ValueError(f"minibatches ({minibatches}) must divide the number of tasks per step"
                       f" ({tasks.key.shape[0]}).")
    if not isinstance(state, MetaState):
      raise TypeError(f"state must be a MetaState from step.init; got {type(state).__name__}.")
    if state is not seen["last"]:
      if seen["state"] is None:
        seen["state"] = jax.eval_shape(lambda p: init(None, p), abstract(state.meta_params))
      diff = tree_mismatch(seen["state"], state)
      if diff:
        raise ValueError(f"state does not fit this RL² step (made for other parameters?): {diff}.")
    return tasks

  compiled = jax.jit(step_fn) if jit else step_fn

  def update(state: MetaState, tasks: RLTask):
    tasks = check(state, tasks)
    new, metrics = compiled(state, tasks)
    seen["last"] = new
    if on_nonfinite == "raise" and not bool(metrics["finite"]):
      raise FloatingPointError(f"non-finite RL² step {int(state.step)} (return"
                               f" {float(metrics['return'])}); the update was not applied.")
    return new, metrics

  step = MetaStep(init=init, update=update, step_fn=step_fn, learner=learner, check=check)
  return RL2(learner=learner, step=step, collect=collect, loss=loss)
