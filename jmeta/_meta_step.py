"""The meta-step: per-task directions over the task batch, the optax outer update, one jit."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jmeta._base import MetaLearner, MetaParams, Task
from jmeta._inner import tree_where
from jmeta._sharding import check_divisible, check_mesh, replicate, shard_tasks, sharded_mean_over_tasks
from jmeta._task_map import batch_size, check_task_map, mean_over_tasks
from jmeta._validate import (abstract, check_float_tree, check_task_batch, describe,
                             first_task_spec, signature, tree_mismatch)


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
    check: ``check(state, tasks) -> tasks``: the validation ``update`` runs
      before the compiled step (``tasks`` may be ``jax.ShapeDtypeStruct``s, as
      ``jmeta.fit`` passes them); returns the task batch with list fields
      converted to arrays. Raises ``TypeError``/``ValueError`` naming the
      argument.
  """

  init: Callable[..., MetaState]
  update: Callable[[MetaState, Task], tuple[MetaState, dict[str, jax.Array]]]
  step_fn: Callable[[MetaState, Task], tuple[MetaState, dict[str, jax.Array]]]
  learner: MetaLearner
  check: Optional[Callable[[MetaState, Task], Task]] = None


def _check_tasks(tasks: Any) -> Task:
  """Checks a task batch's kind and shapes (see ``jmeta._validate.check_task_batch``)."""
  return check_task_batch(tasks)


# Why a meta-step was skipped, in the order ``update``/``fit`` report them.
_CAUSES = (
    ("bad_labels", "bad labels (a support or query label outside [0, classes), or a class"
     " without a support example)"),
    ("support_loss", "non-finite support loss"),
    ("query_loss", "non-finite query loss"),
    ("grad_norm", "non-finite meta-gradient"),
)


def nonfinite_causes(metrics: dict[str, float]) -> str:
  """Names why a meta-step (or a block of them, from its means) was not finite.

  Args:
    metrics: host floats of the metrics (``bad_labels``, ``support_loss``,
      ``query_loss``, ``grad_norm``; means over a block are non-finite when one
      step was).

  Returns:
    The causes joined by ``"; "``: bad labels alone when labels were bad (the
    NaN losses then follow from them), else the non-finite quantities in the
    order of the computation, else the updated meta-parameters.
  """
  if metrics.get("bad_labels", 0.0) > 0:
    return _CAUSES[0][1]
  found = []
  for key, text in _CAUSES[1:]:
    names = [k for k in metrics if k == key or (key == "support_loss" and k == "support_loss_before")]
    if any(not math.isfinite(metrics[k]) for k in names):
      found.append(text)
  return "; ".join(found) or "non-finite updated meta-parameters or outer optimizer state"


def _bad_labels(metrics: dict[str, jax.Array]) -> tuple[dict[str, jax.Array], jax.Array]:
  """Pops every ``*bad_labels*`` metric of the learner; returns the metrics and their any > 0.

  The flag is ``None`` when the learner reports no labels check at all.

  Learners report invalid labels as a metric named ``bad_labels`` (jmeta's
  classification losses put it in their aux, which a learner may prefix:
  ``query_bad_labels``); the meta-step folds them into one flag.
  """
  keys = [k for k in metrics if "bad_labels" in k]
  rest = {k: v for k, v in metrics.items() if k not in keys}
  if not keys:  # no labels (e.g. regression): no flag, and no constant output to dispatch
    return rest, None
  bad = jnp.zeros((), bool)
  for k in keys:
    bad = bad | (metrics[k] > 0)
  return rest, bad


METRICS_MODES = ("full", "lean")


def _lean(task_grad: Callable) -> Callable:
  """``task_grad`` without the metrics that ``make_meta_step(metrics="lean")`` leaves out.

  Dropped inside the per-task function, so the work that computes them is dead
  code under ``jit`` whatever the task map (a ``lax.scan`` over tasks carries
  only what it returns).
  """

  def lean(meta_params, task, step=0):
    value, metrics = task_grad(meta_params, task, step)
    keep = {k: v for k, v in metrics.items()
            if k != "support_loss" and (not k.endswith("_before") or k == "support_loss_before")}
    return value, keep

  return lean


def _all_finite(tree: Any) -> jax.Array:
  """Whether every floating leaf of ``tree`` is finite.

  One reduction over the leaves side by side (XLA fuses the concatenation into
  it), not one per leaf: on the CPU every separate reduction is a kernel call,
  and a small model's meta-step has a few dozen leaves in its parameters and
  optimizer state.
  """
  leaves = [l for l in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(l), jnp.inexact)]
  if not leaves:
    return jnp.ones((), bool)
  dtype = jnp.result_type(*leaves)
  return jnp.all(jnp.isfinite(jnp.concatenate([jnp.ravel(l).astype(dtype) for l in leaves])))


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
    metrics: str = "full",
    donate: bool = False,
) -> MetaStep:
  """Makes the jit-compiled meta-training step of a learner.

  One call computes every task's meta-update direction (``learner.task_grad``)
  over the task batch, averages them, optionally clips by global norm, and
  applies ``outer_opt``. If the labels are bad (a learner or a jmeta
  classification loss reports a support or query label outside ``[0,
  classes)`` or a class without support examples: ``metrics["bad_labels"]``
  is 1), or the mean support or query loss, the meta-gradient or the updated
  meta-parameters and outer state are not finite, the update is skipped (state
  unchanged but for ``step`` and ``skipped``) and ``metrics["finite"]`` is 0;
  with ``on_nonfinite="raise"`` ``update`` then raises ``FloatingPointError``
  naming the cause. These checks are part of the compiled step (no host
  round trip).

  ``update`` first checks its arguments without tracing: ``tasks`` must be a
  ``jmeta.Task`` batch (list fields are converted to arrays; one un-batched
  task, or a batch of other ranks than the first one, is rejected) and
  ``state`` a ``MetaState`` of this step's structure, shapes and dtypes (one
  made by ``init``, or one whose ``opt_state`` fits ``outer_opt`` and whose
  ``meta_params`` fit the learner); a ``TypeError`` or ``ValueError`` names
  the argument, and for a state the part (``meta_params`` or ``opt_state``)
  and the path of the first differing leaf. The state ``update`` returned last
  is not checked again.

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
    metrics: ``"full"`` (default) or ``"lean"``. ``"lean"`` leaves out the
      metrics that cost work the meta-gradient does not need, so that XLA
      removes that work from the compiled step: ``support_loss`` (the support
      loss after the last inner step: one more support forward pass per task)
      and every ``*_before`` metric but ``support_loss_before`` (the query
      loss and aux at the initial parameters: one more query forward pass per
      task). What the guard checks is unchanged but for ``support_loss``: a
      non-finite adapted support loss makes the query loss non-finite too.
    donate: ``update`` donates the state it is given to the compiled step
      (``jax.jit``'s ``donate_argnums``), so XLA writes the new state into its
      buffers instead of allocating new ones: the state passed in is consumed
      (its arrays are deleted) and only the returned one may be used. ``init``
      then copies the parameters it is given, so that donating its state never
      deletes the caller's arrays; ``update`` rejects a consumed state with a
      ``ValueError``. With ``on_nonfinite="raise"`` the unchanged state is the
      exception's ``state`` attribute. Ignored when ``jit=False``.

  Returns:
    A ``MetaStep`` of ``init``, ``update``, the pure ``step_fn`` and ``check``.

  Metrics (means over tasks): ``query_loss`` (after adaptation),
  ``query_loss_before``, ``support_loss``/``support_loss_before``, any aux of
  the loss such as ``query_accuracy``, ``grad_norm`` (before clipping),
  ``bad_labels`` (1.0 if any task's labels were bad, else 0.0; only for
  learners whose losses check labels, i.e. classification), ``finite``
  (1.0 or 0.0), ``skipped`` (running count); ``metrics="lean"`` leaves out
  ``support_loss`` and ``query_loss_before`` (and the other ``query_*_before``).
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
  if metrics not in METRICS_MODES:
    raise ValueError(f"metrics must be one of {METRICS_MODES}; got {metrics!r}.")
  if mesh is not None:
    check_mesh(mesh)
  if not isinstance(donate, bool):
    raise TypeError(f"donate must be True or False; got {donate!r}.")
  task_grad = learner.task_grad if metrics == "full" else _lean(learner.task_grad)

  # What ``update`` checks a state against: the signature (structure, shapes,
  # dtypes) of every state that ``init`` made or that passed the full check
  # once, with its abstract tree for error messages; the ranks of the first
  # task batch; the last state ``update`` returned (it passes without a check).
  known: dict[tuple, MetaState] = {}
  seen: dict[str, Any] = {"ranks": None, "last": None}

  def init(key: jax.Array, params: Any) -> MetaState:
    if isinstance(params, MetaState):
      raise TypeError("params must be the model parameters (e.g. model.init(key, x)); got a"
                      " MetaState (a state from step.init is already initialised).")
    check_float_tree(params, "params")
    meta_params = learner.init(key, params)
    state = MetaState(meta_params, outer_opt.init(meta_params),
                      jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    if donate:  # the learner and optimizer may hold the caller's arrays (MAML's meta_params are params)
      state = jax.tree.map(jnp.copy, state)
    known.setdefault(signature(state), abstract(state))
    return state if mesh is None else replicate(state, mesh)

  def check_state(state: Any, tasks: Task) -> None:
    """The full check of a state this step has not seen; registers it when it passes."""
    if not isinstance(state, MetaState):
      hint = (" (got the meta-parameters alone? pass the MetaState from step.init)"
              if not isinstance(state, tuple) else "")
      raise TypeError(f"state must be a jmeta.MetaState from step.init; got {type(state).__name__}{hint}.")
    if donate and any(isinstance(l, jax.Array) and l.is_deleted() for l in jax.tree.leaves(state)):
      raise ValueError("state was consumed by an earlier update of this step (donate=True deletes"
                       " the state it is given): pass the state that update returned.")
    sig = signature(state)
    if sig in known:
      return
    for field in ("step", "skipped"):
      v = getattr(state, field)
      if jnp.shape(v) != () or not jnp.issubdtype(jnp.result_type(v), jnp.integer):
        raise TypeError(f"state.{field} must be an int32 scalar; got {describe(v)}.")
    check_float_tree(state.meta_params, "state.meta_params")
    refs = [ref.meta_params for ref in known.values()]
    if refs and all(tree_mismatch(r, state.meta_params) for r in refs):
      raise ValueError(
          "state.meta_params does not match this step's (made by step.init): "
          f"{tree_mismatch(refs[-1], state.meta_params)}. Was the state made by another learner's"
          " step, or for another model?")
    expected_opt = jax.eval_shape(outer_opt.init, abstract(state.meta_params))
    diff = tree_mismatch(expected_opt, state.opt_state)
    if diff:
      raise ValueError(
          "state.opt_state does not match this step's outer optimizer (outer_opt.init of"
          f" state.meta_params): {diff}. Was the state made with another outer optimizer?")
    if not refs:  # no state from init to compare with: the learner must run on it
      try:
        direction, _ = jax.eval_shape(lambda mp, t: learner.task_grad(mp, t, state.step),
                                      abstract(state.meta_params), first_task_spec(tasks))
      except Exception as e:  # noqa: BLE001 -- re-raised with the argument named
        raise ValueError(
            "this step's learner cannot run on state.meta_params and one task of tasks"
            f" ({type(e).__name__}: {e}). If the state was made by another learner's step,"
            " make it with this step's init.") from e
      diff = tree_mismatch(abstract(state.meta_params), direction)
      if diff:
        raise ValueError(
            "state.meta_params does not have the structure of this step's learner (its"
            f" meta-gradient differs: {diff}). Was the state made by another learner's step?")
    known[sig] = abstract(state)

  def check(state: Any, tasks: Any) -> Task:
    tasks = check_task_batch(tasks, ranks=seen["ranks"])
    if seen["ranks"] is None and isinstance(tasks, Task):
      seen["ranks"] = (len(tasks.support_x.shape), len(tasks.support_y.shape))
    if state is not seen["last"]:
      check_state(state, tasks)
    return tasks

  def step_fn(state: MetaState, tasks: Task):
    if mesh is None:
      grads, out = mean_over_tasks(
          lambda t: task_grad(state.meta_params, t, state.step),
          tasks, mode=task_map, chunk_size=chunk_size)
    else:
      grads, out = sharded_mean_over_tasks(
          lambda rep, t: task_grad(rep[0], t, rep[1]), (state.meta_params, state.step),
          tasks, mesh, mode=task_map, chunk_size=chunk_size)
    out, bad = _bad_labels(out)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(out["query_loss"]) & jnp.isfinite(grad_norm)
    if bad is not None:
      finite = finite & ~bad
    for k in ("support_loss", "support_loss_before"):
      if k in out:
        finite = finite & jnp.isfinite(out[k])
    if clip_norm is not None:
      scale = jnp.minimum(1.0, clip_norm / (grad_norm + 1e-12))
      grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), grads)
    updates, opt_state = outer_opt.update(grads, state.opt_state, state.meta_params)
    meta_params = optax.apply_updates(state.meta_params, updates)
    finite = finite & _all_finite((meta_params, opt_state))
    meta_params = tree_where(finite, meta_params, state.meta_params)
    opt_state = tree_where(finite, opt_state, state.opt_state)
    skipped = state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32)
    new = MetaState(meta_params, opt_state, state.step + 1, skipped)
    dtype = jnp.result_type(out["query_loss"])
    out = dict(out, grad_norm=grad_norm, finite=finite.astype(jnp.float32), skipped=skipped)
    if bad is not None:
      out["bad_labels"] = bad.astype(dtype)
    return new, out

  compiled = jax.jit(step_fn, donate_argnums=(0,) if donate else ()) if jit else step_fn

  def update(state: MetaState, tasks: Task):
    tasks = check(state, tasks)
    if mesh is not None:
      state = replicate(state, mesh)
      tasks = shard_tasks(tasks, mesh)
      check_divisible(batch_size(tasks), mesh, chunk_size if task_map == "chunked" else None)
    new, metrics = compiled(state, tasks)
    seen["last"] = new
    if on_nonfinite == "raise" and not bool(metrics["finite"]):
      host = {k: float(v) for k, v in metrics.items()}
      err = FloatingPointError(
          f"non-finite meta-step {int(new.step) - 1}: {nonfinite_causes(host)} (query_loss="
          f"{host['query_loss']}, grad_norm={host['grad_norm']}); the update was not applied.")
      err.state = new  # the unchanged state (with donate=True the only one left)
      raise err
    return new, metrics

  return MetaStep(init=init, update=update, step_fn=step_fn, learner=learner, check=check)
