"""Reptile."""

from __future__ import annotations

from typing import Optional

import optax

from jmeta._base import MetaLearner
from jmeta._inner import LossFn
from jmeta._losses import ApplyFn
from jmeta._remat import Remat
from jmeta.algorithms._gradient_based import check_optimizer, gradient_based


def reptile(
    loss_fn: LossFn,
    inner_opt: Optional[optax.GradientTransformation] = None,
    *,
    steps: int = 5,
    remat: Remat = False,
    metrics_before: bool = True,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Reptile: move the initialisation towards the adapted parameters.

  Each task adapts the initialisation ``theta`` with ``steps`` steps of
  ``inner_opt`` on its support set; the per-task direction handed to the outer
  optimizer (as if it were a gradient) is ``theta - phi_task``, so
  ``make_meta_step(reptile(...), optax.sgd(eps))`` performs
  ``theta <- theta + eps * mean(phi_task - theta)``. No second-order terms.

  Args:
    loss_fn: ``loss_fn(params, x, y)``.
    inner_opt: inner optax transformation (default ``optax.sgd(0.01)``).
    steps: number of inner steps (Reptile needs more than one to differ from
      joint training).
    remat: inner-unroll memory policy (``False``, ``True``, ``"sqrt"``, ``"log"``).
    metrics_before: also report ``query_loss_before`` (and the loss's aux
      metrics before adaptation): one more forward pass over each task's query
      set, outside the gradient. ``False`` drops it (cheaper meta-steps).
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  References:
    Nichol, Achiam and Schulman, "On First-Order Meta-Learning Algorithms",
    arXiv:1803.02999, 2018.
  """
  opt = check_optimizer(optax.sgd(0.01) if inner_opt is None else inner_opt)
  return gradient_based(loss_fn, init=lambda key, p: p, params_of=lambda mp: mp,
                        inner_opt_of=lambda mp: opt, steps=steps,
                        first_order=True, remat=remat, direction="reptile",
                        metrics_before=metrics_before, apply_fn=apply_fn, name="reptile")
