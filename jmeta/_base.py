"""Shared types: tasks, meta-learners and their results."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax

PyTree = Any
Params = PyTree
MetaParams = PyTree


class Task(NamedTuple):
  """One few-shot task (or, with a leading axis on every leaf, a batch of tasks).

  Attributes:
    support_x: support inputs, shape ``(n_support, *feature_shape)``.
    support_y: support targets, shape ``(n_support, *target_shape)`` (int labels
      for classification).
    query_x: query inputs, shape ``(n_query, *feature_shape)``.
    query_y: query targets, shape ``(n_query, *target_shape)``.
  """

  support_x: jax.Array
  support_y: jax.Array
  query_x: jax.Array
  query_y: jax.Array


class AdaptResult(NamedTuple):
  """What an inner loop returns.

  Attributes:
    params: the adapted (task-specific) parameters.
    losses: support loss before each inner step and after the last one, shape
      ``(steps + 1,)``.
  """

  params: Params
  losses: jax.Array


class MetaLearner(NamedTuple):
  """A meta-learning algorithm as a bundle of pure functions.

  Every learner is made by a factory (``maml``, ``reptile``, ``protonet`` ...)
  whose arguments are static configuration; everything learnable lives in the
  meta-parameter pytree returned by ``init``.

  Attributes:
    init: ``init(key, params) -> meta_params``; builds the meta-parameters from
      model parameters (e.g. adds Meta-SGD's learning rates).
    adapt: ``adapt(meta_params, x, y, *, steps=None) -> AdaptResult``; fits the
      task-specific parameters to a support set. ``steps`` overrides the number
      of inner steps (static) for evaluation.
    task_loss: ``task_loss(meta_params, task, step=0, *, steps=None) -> (loss,
      metrics)``; the outer objective of one task (query loss after
      adaptation) and a dict of scalar metrics. ``step`` is the meta-iteration
      (an int, may be traced: for annealing schedules such as MAML++'s);
      ``steps`` overrides the number of inner steps as in ``adapt`` (a Python
      int, static; used by ``jmeta.evaluate`` to meta-test with another number
      of adaptation steps). Learners without an inner loop (ProtoNets, Matching
      Networks, R2-D2) accept and ignore it.
    task_grad: ``task_grad(meta_params, task, step=0) -> (direction, metrics)``;
      the per-task meta-update direction, a pytree like ``meta_params`` that the
      outer optax optimizer treats as a gradient (``jax.grad`` of ``task_loss``
      for gradient-based learners; ``meta_params - adapted`` for Reptile).
    predict: ``predict(meta_params, support_x, support_y, query_x, *,
      steps=None) -> predictions`` on the query inputs after adapting to the
      support set (``steps`` as in ``adapt``), the same signature for every
      learner: what a learner needs to predict (its model, e.g. the
      ``apply_fn=`` of ``jmeta.maml``) it takes at construction. The metric
      learners return logits ``(n_query, ways)``. ``None`` for a learner that
      cannot predict.
  """

  init: Callable[..., MetaParams]
  adapt: Callable[..., AdaptResult]
  task_loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  task_grad: Callable[..., tuple[MetaParams, dict[str, jax.Array]]]
  predict: Optional[Callable[..., jax.Array]] = None
