"""A meta-training loop: many meta-steps per compiled call, sampling tasks on device."""

from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp

from jmeta._base import Task
from jmeta._meta_step import MetaState, MetaStep, nonfinite_causes
from jmeta._validate import check_task_batch


def fit(
    step: MetaStep,
    state: MetaState,
    sample_tasks: Callable[[jax.Array, int], Task],
    *,
    key: jax.Array,
    iterations: int,
    meta_batch: int,
    log_every: int = 100,
    on_nonfinite: str = "skip",
    start: int = 0,
) -> Iterator[tuple[MetaState, dict[str, float]]]:
  """Meta-trains, yielding the state and mean metrics every ``log_every`` steps.

  Each block of ``log_every`` meta-steps is one compiled ``lax.scan`` in which
  the task batch of meta-step ``i`` is drawn on device as
  ``sample_tasks(fold_in(key, i), meta_batch)``: no host round trip per step.
  The same key gives the same run.

  Args:
    step: a ``MetaStep`` from ``make_meta_step``.
    state: the initial ``MetaState``.
    sample_tasks: ``sample_tasks(key, n) -> Task`` batch.
    key: PRNG key of the task stream.
    iterations: total number of meta-steps.
    meta_batch: tasks per meta-step.
    log_every: meta-steps per compiled block (and per yielded record).
    on_nonfinite: ``"skip"`` (the meta-step's guard skips non-finite updates
      and the record counts them) or ``"raise"`` (``FloatingPointError`` as soon
      as a block saw a non-finite meta-step).
    start: index of the first meta-step (resume with ``start=int(state.step)``);
      blocks end at the multiples of ``log_every``, so a run resumed at a block
      boundary computes the same numbers as an uninterrupted one.

  Yields:
    ``(state, record)`` where ``record`` holds ``step`` and the means over the
    block of every metric, plus ``nonfinite`` (skipped, non-finite steps in
    the block) and ``bad_labels`` (those of them whose labels were bad).

  Raises:
    TypeError, ValueError: before any step, if ``state`` does not fit ``step``
      or the first task batch (its shapes, from ``jax.eval_shape``) is not a
      ``jmeta.Task`` batch (see ``make_meta_step``).
  """
  if start < 0 or iterations < start or log_every < 1 or meta_batch < 1:
    raise ValueError(
        f"need 0 <= start <= iterations, log_every >= 1, meta_batch >= 1; got start={start},"
        f" iterations={iterations}, log_every={log_every}, meta_batch={meta_batch}.")
  if on_nonfinite not in ("skip", "raise"):
    raise ValueError(f"on_nonfinite must be 'skip' or 'raise'; got {on_nonfinite!r}.")
  if not isinstance(step, MetaStep):
    raise TypeError(f"step must be a jmeta.MetaStep (from make_meta_step); got {type(step).__name__}.")
  if not callable(sample_tasks):
    raise TypeError(f"sample_tasks must be callable as sample_tasks(key, n); got {type(sample_tasks).__name__}.")
  # The first batch's shapes (no data drawn) go through the step's own checks.
  spec = jax.eval_shape(lambda k: sample_tasks(k, meta_batch), jax.random.fold_in(key, start))
  if step.check is not None:
    step.check(state, check_task_batch(spec, name=f"sample_tasks(key, {meta_batch})"))

  def block(state, start, length):
    def body(s, i):
      tasks = sample_tasks(jax.random.fold_in(key, i), meta_batch)
      return step.step_fn(s, tasks)
    state, metrics = jax.lax.scan(body, state, start + jnp.arange(length))
    means = {k: jnp.mean(v) for k, v in metrics.items()
             if k not in ("finite", "skipped", "bad_labels")}
    means["nonfinite"] = jnp.sum(1.0 - metrics["finite"])
    means["bad_labels"] = (jnp.sum(metrics["bad_labels"]) if "bad_labels" in metrics
                           else jnp.zeros((), means["nonfinite"].dtype))
    return state, means

  compiled = jax.jit(block, static_argnums=2)
  done = start
  while done < iterations:
    length = min(log_every - done % log_every, iterations - done)
    state, means = compiled(state, jnp.asarray(done, jnp.int32), length)
    done += length
    record = {k: float(v) for k, v in means.items()}
    record["step"] = done
    if on_nonfinite == "raise" and record["nonfinite"] > 0:
      raise FloatingPointError(
          f"{int(record['nonfinite'])} non-finite meta-step(s) between steps {done - length}"
          f" and {done} ({int(record['bad_labels'])} with bad labels): {nonfinite_causes(record)};"
          f" mean query_loss {record['query_loss']}. Those updates were skipped.")
    yield state, record
