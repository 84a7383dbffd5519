"""Meta-test evaluation: means with 95% confidence intervals over held-out tasks."""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import numpy as np

from jmeta._base import MetaLearner, MetaParams, Task
from jmeta._meta_step import MetaState
from jmeta._validate import check_float_tree, check_task_batch


def mean_ci95(values) -> tuple[float, float]:
  """Mean and half-width of the normal-approximation 95% confidence interval."""
  v = np.asarray(values, dtype=np.float64).ravel()
  if v.size == 0:
    raise ValueError("no values to summarise.")
  half = 1.96 * v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else float("nan")
  return float(v.mean()), float(half)


@functools.lru_cache(maxsize=32)
def _compiled_eval(learner: MetaLearner, steps: tuple[int, ...]):
  """One compiled evaluation function per (learner, steps): repeated calls reuse it."""

  @jax.jit
  def run(mp, batch):
    out = {}
    for s in steps:
      _, metrics = jax.vmap(lambda t: learner.task_loss(mp, t, 0, steps=s))(batch)
      out[s] = {k: v for k, v in metrics.items() if not k.endswith("_before")}
    return out

  return run


def evaluate(
    learner: MetaLearner,
    meta_params: MetaParams,
    sample_tasks: Callable[[jax.Array, int], Task],
    key: jax.Array,
    *,
    num_tasks: int = 1000,
    steps: Sequence[int] = (0, 1, 5, 10),
    batch_size: int = 100,
) -> dict[int, dict[str, tuple[float, float]]]:
  """Meta-tests a learner on held-out tasks after several numbers of inner steps.

  Every number of steps sees the same tasks. For learners without an inner loop
  (ProtoNets, R2-D2, ...) the number of steps is ignored.

  Args:
    learner: the ``MetaLearner``.
    meta_params: its meta-parameters.
    sample_tasks: ``sample_tasks(key, n) -> Task`` batch (e.g.
      ``family.sample_batch``).
    key: PRNG key for the test tasks.
    num_tasks: number of test tasks (>= 2).
    steps: numbers of adaptation steps to evaluate.
    batch_size: tasks per compiled batch.

  Raises:
    TypeError, ValueError: before any task is drawn, for ``meta_params`` that
      are a ``MetaState`` or not floating arrays, or a ``sample_tasks`` whose
      batches are not ``jmeta.Task`` batches; after, for tasks with bad labels.

  Returns:
    ``{steps: {metric: (mean, ci95_half_width)}}`` with ``query_loss`` and any
    other per-task metric (e.g. ``query_accuracy``).
  """
  if not isinstance(learner, MetaLearner):
    raise TypeError(f"learner must be a jmeta.MetaLearner; got {type(learner).__name__}.")
  if isinstance(meta_params, MetaState):
    raise TypeError("meta_params must be the meta-parameters (state.meta_params); got the whole"
                    " MetaState.")
  check_float_tree(meta_params, "meta_params")
  if not callable(sample_tasks):
    raise TypeError(f"sample_tasks must be callable as sample_tasks(key, n); got {type(sample_tasks).__name__}.")
  if not isinstance(num_tasks, int) or num_tasks < 2:
    raise ValueError(f"num_tasks must be an int >= 2; got {num_tasks!r}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive; got {batch_size!r}.")
  steps = tuple(steps)
  for s in steps:
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
      raise ValueError(f"steps must be non-negative ints; got {steps!r}.")

  check_task_batch(jax.eval_shape(lambda k: sample_tasks(k, batch_size), key),
                   name=f"sample_tasks(key, {batch_size})")
  run = _compiled_eval(learner, steps)

  collected: dict[int, dict[str, list]] = {s: {} for s in steps}
  keys = jax.random.split(key, math.ceil(num_tasks / batch_size))
  done = 0
  for k in keys:
    n = min(batch_size, num_tasks - done)
    out = run(meta_params, sample_tasks(k, batch_size))
    for s in steps:
      for name, v in out[s].items():
        if "bad_labels" in name:
          if np.any(np.asarray(v)[:n] > 0):
            raise ValueError(
                f"sample_tasks(key, {batch_size}) returned tasks with bad labels (a support or query"
                " label outside [0, classes), or a class without a support example).")
          continue
        collected[s].setdefault(name, []).append(np.asarray(v)[:n])
    done += n
  return {s: {name: mean_ci95(np.concatenate(v)) for name, v in d.items()}
          for s, d in collected.items()}
