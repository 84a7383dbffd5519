"""The meta-step: per-task directions over the task batch, the optax outer update, one jit."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jmeta._base import MetaLearner, MetaParams, Task
from jmeta._inner import tree_where
from jmeta._sharding import check_divisible, check_mesh, replicate, shard_tasks, sharded_mean_over_tasks
from jmeta._task_map import batch_size, check_task_map, mean_over_tasks


class MetaState(NamedTuple):
  """The state of meta-training.

  Attributes:
    meta_params: the meta-parameters (initialisation, learned rates, ...).
    opt_state: the outer optax optimizer's state.
    step: number of meta-steps taken (skipped ones included), int32 scalar.
    skipped: number of meta-steps skipped by the non-finite guard.
  """

  meta_params: MetaParams
  opt_state: optax.OptState
  step: jax.Array
  skipped: jax.Array


class MetaStep(NamedTuple):
  """A meta-training step as pure functions.

  Attributes:
    init: ``init(key, params) -> MetaState``.
    update: ``update(state, tasks) -> (state, metrics)``: validates the task
      batch, runs the jit-compiled step and applies the non-finite policy.
    step_fn: the pure, un-jitted ``step_fn(state, tasks) -> (state, metrics)``
      for use inside your own ``jit``/``scan`` (no validation, no raising).
    learner: the ``MetaLearner`` it drives.
  """

  init: Callable[..., MetaState]
  update: Callable[[MetaState, Task], tuple[MetaState, dict[str, jax.Array]]]
  step_fn: Callable[[MetaState, Task], tuple[MetaState, dict[str, jax.Array]]]
  learner: MetaLearner


def _check_tasks(tasks: Any) -> None:
  if not isinstance(tasks, Task):
    raise TypeError(f"tasks must be a jmeta.Task with a leading task axis; got {type(tasks).__name__}.")
  n = batch_size(tasks)
  if n == 0:
    raise ValueError("the task batch is empty: it needs at least one task.")
  sx, sy, qx, qy = (jnp.shape(v) for v in tasks)
  if len(sx) < 2 or len(qx) < 2:
    raise ValueError(
        "support_x and query_x need shape (tasks, examples, ...); got"
        f" {sx} and {qx}.")
  if sx[2:] != qx[2:]:
    raise ValueError(
        f"support and query features differ: support_x has feature shape {sx[2:]},"
        f" query_x has {qx[2:]}.")
  if sy[:2] != sx[:2] or qy[:2] != qx[:2]:
    raise ValueError(
        "targets must match inputs in the task and example axes: support_x"
        f" {sx} vs support_y {sy}, query_x {qx} vs query_y {qy}.")
  if sy[2:] != qy[2:]:
    raise ValueError(f"support_y and query_y target shapes differ: {sy[2:]} vs {qy[2:]}.")


def make_meta_step(
    learner: MetaLearner,
    outer_opt: optax.GradientTransformation,
    *,
    clip_norm: Optional[float] = None,
    on_nonfinite: str = "skip",
    task_map: str = "auto",
    chunk_size: Optional[int] = None,
    jit: bool = True,
    mesh: Optional[Mesh] = None,
) -> MetaStep:
  """Makes the jit-compiled meta-training step of a learner.

  One call computes every task's meta-update direction (``learner.task_grad``)
  over the task batch, averages them, optionally clips by global norm, and
  applies ``outer_opt``. If the mean query loss or the meta-gradient is not
  finite, the update is skipped (state unchanged but for ``step`` and
  ``skipped``) and ``metrics["finite"]`` is 0; with ``on_nonfinite="raise"``
  ``update`` then raises ``FloatingPointError``.

  Args:
    learner: a ``MetaLearner`` (``jmeta.maml(...)``, ``jmeta.protonet(...)``...).
    outer_opt: the optax optimizer of the meta-parameters.
    clip_norm: clip the mean meta-gradient to this global norm (``None``: no).
    on_nonfinite: ``"skip"`` or ``"raise"``.
    task_map: how tasks are mapped: ``"auto"`` (default: ``"vmap"`` on
      GPU/TPU; on the CPU ``"scan"`` for tasks of at least
      ``AUTO_SCAN_ELEMENTS`` input elements, such as image episodes, and
      ``"vmap"`` for small ones), ``"vmap"``, ``"scan"`` or ``"chunked"``
      (see ``jmeta.mean_over_tasks``).
    chunk_size: tasks per chunk when ``task_map="chunked"``.
    jit: compile ``update`` with ``jax.jit`` (turn off only to debug).
    mesh: a ``jax.sharding.Mesh`` (e.g. ``jmeta.task_mesh()``) to shard the
      task batch over (data parallel over tasks, meta-parameters replicated,
      the meta-gradient averaged across devices with ``pmean``); ``None``: one
      device. The batch size must be a multiple of ``mesh.size``. ``update``
      places the state on every device and treats a task batch that is not
      yet a global array as this process's shard (see ``jmeta.shard_tasks``).

  Returns:
    A ``MetaStep`` of ``init``, ``update`` and the pure ``step_fn``.

  Metrics (means over tasks): ``query_loss`` (after adaptation),
  ``query_loss_before``, ``support_loss``/``support_loss_before``, any aux of
  the loss such as ``query_accuracy``, ``grad_norm`` (before clipping),
  ``finite`` (1.0 or 0.0), ``skipped`` (running count).
  """
  if not isinstance(learner, MetaLearner):
    raise TypeError(f"learner must be a jmeta.MetaLearner; got {type(learner).__name__}.")
  if not (hasattr(outer_opt, "init") and hasattr(outer_opt, "update")):
    raise TypeError(f"outer_opt must be an optax GradientTransformation; got {type(outer_opt).__name__}.")
  if on_nonfinite not in ("skip", "raise"):
    raise ValueError(f"on_nonfinite must be 'skip' or 'raise'; got {on_nonfinite!r}.")
  if clip_norm is not None and not clip_norm > 0:
    raise ValueError(f"clip_norm must be positive or None; got {clip_norm!r}.")
  check_task_map(task_map, chunk_size)
  if mesh is not None:
    check_mesh(mesh)

  def init(key: jax.Array, params: Any) -> MetaState:
    meta_params = learner.init(key, params)
    state = MetaState(meta_params, outer_opt.init(meta_params),
                      jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    return state if mesh is None else replicate(state, mesh)

  def step_fn(state: MetaState, tasks: Task):
    if mesh is None:
      grads, metrics = mean_over_tasks(
          lambda t: learner.task_grad(state.meta_params, t, state.step),
          tasks, mode=task_map, chunk_size=chunk_size)
    else:
      grads, metrics = sharded_mean_over_tasks(
          lambda rep, t: learner.task_grad(rep[0], t, rep[1]), (state.meta_params, state.step),
          tasks, mesh, mode=task_map, chunk_size=chunk_size)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(metrics["query_loss"]) & jnp.isfinite(grad_norm)
    if clip_norm is not None:
      scale = jnp.minimum(1.0, clip_norm / (grad_norm + 1e-12))
      grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
    updates, opt_state = outer_opt.update(grads, state.opt_state, state.meta_params)
    meta_params = optax.apply_updates(state.meta_params, updates)
    meta_params = tree_where(finite, meta_params, state.meta_params)
    opt_state = tree_where(finite, opt_state, state.opt_state)
    skipped = state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32)
    new = MetaState(meta_params, opt_state, state.step + 1, skipped)
    metrics = dict(metrics, grad_norm=grad_norm,
                   finite=finite.astype(jnp.float32), skipped=skipped)
    return new, metrics

  compiled = jax.jit(step_fn) if jit else step_fn

  def update(state: MetaState, tasks: Task):
    _check_tasks(tasks)
    if mesh is not None:
      state = replicate(state, mesh)
      tasks = shard_tasks(tasks, mesh)
      check_divisible(batch_size(tasks), mesh, chunk_size if task_map == "chunked" else None)
    new, metrics = compiled(state, tasks)
    if on_nonfinite == "raise" and not bool(metrics["finite"]):
      raise FloatingPointError(
          f"non-finite meta-step {int(state.step)}: query_loss="
          f"{float(metrics['query_loss'])}, grad_norm={float(metrics['grad_norm'])};"
          " the update was not applied.")
    return new, metrics

  return MetaStep(init=init, update=update, step_fn=step_fn, learner=learner)
