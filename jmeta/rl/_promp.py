"""MAML-RL's outer update as ProMP's clipped objective (Rothfuss et al. 2019), one compiled program.

Finn et al. (2017) take the outer step of MAML-RL with TRPO; ProMP replaces
the trust region by PPO's clipped surrogate, which needs no conjugate-gradient
solve and no line search: a few plain optax steps on one batch. That is why
it is the one here: the whole meta-iteration stays one ``jit`` of ordinary
gradient steps, with any optax optimizer.

One iteration samples ``meta_batch`` tasks and, with the current policy
``θ_old``, the pre-adaptation rollouts of every inner step and the
post-adaptation rollouts of ``θ'_old`` (stored with their log-probabilities),
then takes ``outer_steps`` optax steps on minus

``J(θ) = mean_tasks mean_n sum_t min(ρ_t Â_t, clip(ρ_t, 1 - ε, 1 + ε) Â_t) / T``

where ``ρ_t = π_θ'(a_t | s_t) / π_θ'_old(a_t | s_t)``, ``Â_t = γ^t A_t``
and ``θ' = θ + α ∇ J_inner(θ)`` is recomputed at every step from the stored
pre-adaptation rollouts with DiCE made importance-weighted
(``dice_surrogate(..., old_logp=...)``), so the outer gradient keeps the
second-order terms. At ``θ = θ_old`` (the first step) every ratio is 1 and
the gradient is exactly that of ``maml_rl``'s DiCE ``task_loss`` on the same
rollouts; later steps are clipped where the adapted policy moved more than
``ε``. ProMP's KL penalty on the pre-adaptation policy is not used; the
clipping bounds each step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._inner import tree_where
from jmeta._meta_step import MetaState, make_meta_step
from jmeta.algorithms._gradient_based import check_steps
from jmeta.rl import _estimators as est
from jmeta.rl._envs import Env, RLTask
from jmeta.rl._maml_rl import MetaIteration, batch_advantages, maml_rl
from jmeta.rl._policies import categorical, gaussian


class PrompBatch(NamedTuple):
  """What one ProMP iteration samples for one task (no gradient).

  Attributes:
    pre: pre-adaptation rollouts of every inner step, leaves ``(steps, n, T, ...)``.
    pre_adv: their advantages ``(steps, n, T)``.
    pre_logp: their log-probabilities under the sampling policies.
    post: post-adaptation rollouts of ``θ'_old``, ``(n, T, ...)``.
    post_adv: their advantages.
    post_logp: their log-probabilities under ``θ'_old``.
  """

  pre: est.Trajectory
  pre_adv: jax.Array
  pre_logp: jax.Array
  post: est.Trajectory
  post_adv: jax.Array
  post_logp: jax.Array


def promp_iteration(
    env: Env,
    apply_fn: Callable[[Any, jax.Array], Any],
    outer_opt: optax.GradientTransformation,
    *,
    meta_batch: int = 20,
    clip_eps: float = 0.3,
    outer_steps: int = 5,
    clip_norm: Optional[float] = None,
    on_nonfinite: str = "skip",
    jit: bool = True,
    **maml_kwargs: Any,
) -> MetaIteration:
  """MAML-RL with ProMP's clipped outer objective (module docstring).

  Args:
    env: the task family.
    apply_fn: the policy, ``apply_fn(params, obs)``.
    outer_opt: the optax optimizer of the outer steps.
    meta_batch: tasks per iteration.
    clip_eps: the ratio clip ε (Rothfuss et al.: 0.3).
    outer_steps: optax steps per sampled batch (Rothfuss et al.: 5).
    clip_norm: clip each outer gradient's global norm (``None``: no).
    on_nonfinite: ``"skip"`` (a non-finite iteration leaves the state
      unchanged but for ``step`` and ``skipped``) or ``"raise"``.
    jit: compile ``update``.
    **maml_kwargs: the inner loop, as for :func:`maml_rl` (``dist``,
      ``inner_lr``, ``inner_opt``, ``steps``, ``trajectories``, ``gamma``,
      ``gae_lambda``, ``baseline``, ``first_order``, ``normalize_advantages``;
      ``estimator`` must be ``"dice"``).

  Returns:
    A ``MetaIteration`` whose ``step.learner`` is the :func:`maml_rl` learner
    (for ``jmeta.evaluate``) and whose ``step.step_fn`` is one ProMP
    iteration (for ``jmeta.fit``). Metrics: ``query_loss`` (minus the
    post-adaptation return of ``θ'_old``), ``return``, ``return_before``,
    ``grad_norm`` (of the first outer step), ``clip_fraction`` (of the last),
    ``finite``, ``skipped``, ``bad_labels`` (0).
  """
  if maml_kwargs.get("estimator", "dice") != "dice":
    raise ValueError(f"estimator must be 'dice' for ProMP's outer objective; got"
                     f" {maml_kwargs['estimator']!r}.")
  learner = maml_rl(env, apply_fn, **maml_kwargs)  # checks every inner-loop argument
  if isinstance(meta_batch, bool) or not isinstance(meta_batch, int) or meta_batch < 1:
    raise ValueError(f"meta_batch must be a positive int; got {meta_batch!r}.")
  if isinstance(clip_eps, bool) or not isinstance(clip_eps, (int, float)) or not 0 < clip_eps < 1:
    raise ValueError(f"clip_eps must be a number in (0, 1); got {clip_eps!r}.")
  if isinstance(outer_steps, bool) or not isinstance(outer_steps, int) or outer_steps < 1:
    raise ValueError(f"outer_steps must be a positive int; got {outer_steps!r}.")
  base = make_meta_step(learner, outer_opt, clip_norm=clip_norm, on_nonfinite=on_nonfinite,
                        task_map="vmap", jit=False)
  dist = maml_kwargs.get("dist") or (categorical if env.discrete else gaussian)
  inner_opt = maml_kwargs.get("inner_opt") or optax.sgd(maml_kwargs.get("inner_lr", 0.1))
  steps = check_steps(maml_kwargs.get("steps", 1))
  trajectories = maml_kwargs.get("trajectories", 20)
  gamma = float(maml_kwargs.get("gamma", 0.99))
  first_order = maml_kwargs.get("first_order", False)
  adv_args = (gamma, float(maml_kwargs.get("gae_lambda", 1.0)), maml_kwargs.get("baseline", "linear"),
              maml_kwargs.get("normalize_advantages", False))

  def logp_of(params, traj):
    return est.log_probs(apply_fn, dist, params, traj)

  def inner_step(p, opt_state, traj, adv, old_logp):
    grad = jax.grad(lambda q: est.dice_surrogate(logp_of(q, traj), adv, gamma, old_logp)
                    / env.horizon)(p)
    if first_order:
      grad = jax.lax.stop_gradient(grad)
    updates, opt_state = inner_opt.update(jax.tree.map(jnp.negative, grad), opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  def collect(params, task: RLTask) -> PrompBatch:
    """The rollouts of ``maml_rl``'s ``task_loss`` (same keys), stored for the outer steps."""
    inner_key, post_key = jax.random.split(task.key)

    def body(carry, k):
      p, opt_state = carry
      traj = est.rollouts(env, apply_fn, dist, p, task.params, k, trajectories)
      adv = batch_advantages(traj, *adv_args)
      old = jax.lax.stop_gradient(logp_of(p, traj))
      return inner_step(p, opt_state, traj, adv, old), (traj, adv, old)

    (adapted, _), (pre, pre_adv, pre_logp) = jax.lax.scan(
        body, (params, inner_opt.init(params)), jax.random.split(inner_key, steps))
    adapted = jax.lax.stop_gradient(adapted)
    post = est.rollouts(env, apply_fn, dist, adapted, task.params, post_key, trajectories)
    return PrompBatch(pre, pre_adv, pre_logp, post, batch_advantages(post, *adv_args),
                      jax.lax.stop_gradient(logp_of(adapted, post)))

  def objective(params, batch: PrompBatch):
    """Minus the clipped post-adaptation surrogate of one task, and its clip fraction."""
    def body(carry, data):
      p, opt_state = carry
      return inner_step(p, opt_state, *data), None

    (adapted, _), _ = jax.lax.scan(body, (params, inner_opt.init(params)),
                                   (batch.pre, batch.pre_adv, batch.pre_logp))
    ratio = jnp.exp(logp_of(adapted, batch.post) - batch.post_logp)
    horizon_steps = batch.post_adv.shape[-1]
    discounts = gamma ** jnp.arange(horizon_steps, dtype=batch.post_adv.dtype)
    adv = jnp.broadcast_to(discounts, batch.post_adv.shape) * batch.post_adv
    clipped = jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps)
    surrogate = jnp.mean(jnp.sum(jnp.minimum(ratio * adv, clipped * adv), axis=-1))
    fraction = jnp.mean((jnp.abs(ratio - 1) > clip_eps).astype(ratio.dtype))
    return -surrogate / env.horizon, fraction

  def step_fn(state: MetaState, tasks: RLTask):
    old = state.meta_params
    batch = jax.vmap(lambda t: collect(old, t))(tasks)

    def outer(carry, _):
      p, opt_state = carry
      def mean_loss(q):
        losses, fractions = jax.vmap(lambda b: objective(q, b))(batch)
        return jnp.mean(losses), jnp.mean(fractions)
      (_, fraction), grads = jax.value_and_grad(mean_loss, has_aux=True)(p)
      norm = optax.tree.norm(grads)
      if clip_norm is not None:
        grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, clip_norm / (norm + 1e-12)), grads)
      updates, opt_state = outer_opt.update(grads, opt_state, p)
      return (optax.apply_updates(p, updates), opt_state), (norm, fraction)

    (params, opt_state), (norms, fractions) = jax.lax.scan(
        outer, (old, state.opt_state), None, length=outer_steps)
    ret = jnp.mean(jnp.sum(batch.post.rewards, axis=-1))
    before = jnp.mean(jnp.sum(batch.pre.rewards[:, 0], axis=-1))
    leaves = [v for v in jax.tree.leaves((params, opt_state, norms))
              if jnp.issubdtype(jnp.result_type(v), jnp.inexact)]
    finite = jnp.isfinite(ret) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in leaves]))
    params = tree_where(finite, params, old)
    opt_state = tree_where(finite, opt_state, state.opt_state)
    skipped = state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32)
    metrics = {"query_loss": -ret, "return": ret, "return_before": before,
               "grad_norm": norms[0], "clip_fraction": fractions[-1],
               "finite": finite.astype(jnp.float32), "skipped": skipped,
               "bad_labels": jnp.zeros((), ret.dtype)}
    return MetaState(params, opt_state, state.step + 1, skipped), metrics

  compiled_step = jax.jit(step_fn) if jit else step_fn

  def raise_if_nonfinite(state, metrics):
    if on_nonfinite == "raise" and not bool(metrics["finite"]):
      raise FloatingPointError(f"non-finite ProMP iteration {int(state.step)}: return"
                               f" {float(metrics['return'])}; the update was not applied.")

  def step_update(state: MetaState, tasks: RLTask):
    new, metrics = compiled_step(state, base.check(state, tasks))
    raise_if_nonfinite(state, metrics)
    return new, metrics

  step = base._replace(step_fn=step_fn, update=step_update)

  def run(state, key):
    return step_fn(state, env.sample_batch(key, meta_batch))

  compiled = jax.jit(run) if jit else run

  def update(state: MetaState, key: jax.Array):
    new, metrics = compiled(state, key)
    raise_if_nonfinite(state, metrics)
    return new, metrics

  return MetaIteration(init=base.init, update=update, step=step, sample_tasks=env.sample_batch)
