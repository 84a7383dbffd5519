"""The shared machinery of gradient-based meta-learners (the MAML family)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner, MetaParams, Params, Task
from jmeta._losses import ApplyFn
from jmeta._inner import LossFn, Mask, call_loss, check_segment, inner_loop, resolve_mask
from jmeta._remat import Remat, check_remat


def check_steps(steps: Any, name: str = "steps") -> int:
  """Returns ``steps`` if it is a non-negative Python int, else raises."""
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"{name} must be a non-negative int; got {steps!r}.")
  return steps


def check_optimizer(opt: Any, name: str = "inner_opt") -> optax.GradientTransformation:
  """Checks that ``opt`` is an optax ``GradientTransformation``."""
  if not (hasattr(opt, "init") and hasattr(opt, "update")):
    raise TypeError(
        f"{name} must be an optax GradientTransformation (with init and update);"
        f" got {type(opt).__name__}.")
  return opt


def check_apply_fn(apply_fn: Any, loss_fn: Any) -> Optional[ApplyFn]:
  """The model ``predict`` runs: ``apply_fn``, else the one ``loss_fn`` was made from.

  ``jmeta.mse_loss``, ``cross_entropy_loss`` and ``binary_cross_entropy_loss``
  record their model as ``loss_fn.apply_fn``; ``None`` when neither has one.
  """
  if apply_fn is None:
    apply_fn = getattr(loss_fn, "apply_fn", None)
  if apply_fn is not None and not callable(apply_fn):
    raise TypeError(f"apply_fn must be callable (the model's apply); got {type(apply_fn).__name__}.")
  return apply_fn


def adapted_predict(adapt: Callable[..., AdaptResult], apply_fn: Optional[ApplyFn],
                    name: str) -> Callable[..., jax.Array]:
  """``predict(meta_params, support_x, support_y, query_x, *, steps=None)`` of a learner.

  Adapts to the support set and applies the model to the query inputs; raises
  a clear error if the learner was built without a model.
  """

  def predict(meta_params, support_x, support_y, query_x, *, steps: Optional[int] = None):
    if apply_fn is None:
      raise ValueError(
          f"{name}(...) has no model to predict with: pass apply_fn= (e.g. apply_fn=net.apply)"
          " to it, or build its loss with jmeta.mse_loss / jmeta.cross_entropy_loss.")
    return apply_fn(adapt(meta_params, support_x, support_y, steps=steps).params, query_x)

  return predict


def query_metrics(loss_fn: LossFn, before: Params, after: Params, task: Task,
                  adapted: AdaptResult, *, metrics_before: bool = True
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Query loss after adaptation and the standard metrics of one task.

  With ``metrics_before`` the query loss (and aux) at the un-adapted
  parameters are added as ``query_*_before``: one more forward pass over the
  query set, outside the gradient. A ``bad_labels`` aux of the loss (support
  or query labels out of range) becomes the metric ``bad_labels``.
  """
  loss, aux = call_loss(loss_fn, after, task.query_x, task.query_y)
  metrics = {
      "query_loss": loss,
      "support_loss_before": adapted.losses[0],
      "support_loss": adapted.losses[-1],
  }
  aux = dict(aux)
  if "bad_labels" in aux:
    # A loss that checks its labels (jmeta's classification losses): check the
    # support labels too. Only the labels are read, so under jit the forward
    # pass of this call is dead code and XLA removes it.
    _, support_aux = call_loss(loss_fn, jax.lax.stop_gradient(before), task.support_x,
                               task.support_y)
    bad = jnp.maximum(aux.pop("bad_labels"), support_aux.get("bad_labels", 0))
    metrics["bad_labels"] = jax.lax.stop_gradient(bad)
  for k, v in aux.items():
    metrics[f"query_{k}"] = v
  if metrics_before:
    loss_before, aux_before = call_loss(
        loss_fn, jax.lax.stop_gradient(before), task.query_x, task.query_y)
    metrics["query_loss_before"] = loss_before
    for k, v in aux_before.items():
      if k != "bad_labels":
        metrics[f"query_{k}_before"] = v
  return loss, metrics


def gradient_based(
    loss_fn: LossFn,
    *,
    init: Callable[[jax.Array, Params], MetaParams],
    params_of: Callable[[MetaParams], Params],
    inner_opt_of: Callable[[MetaParams], optax.GradientTransformation],
    steps: int,
    first_order: bool = False,
    remat: Remat = False,
    mask: Optional[Mask] = None,
    direction: str = "gradient",
    second_order_steps: Optional[int] = None,
    metrics_before: bool = True,
    apply_fn: Optional[ApplyFn] = None,
    name: str = "gradient_based",
) -> MetaLearner:
  """Builds a learner that adapts by an inner loop of gradient steps.

  Args:
    loss_fn: ``loss_fn(params, x, y)``, used on support (inner) and query (outer).
    init: ``init(key, params) -> meta_params``.
    params_of: extracts the initial model parameters from the meta-parameters.
    inner_opt_of: builds the inner optimizer from the meta-parameters (so that
      it may close over learnable quantities such as Meta-SGD's rates).
    steps: default number of inner steps.
    first_order: stop gradients through inner gradients.
    remat: memory policy of the inner unroll: ``False``, ``True``/``"step"``,
      ``"sqrt"`` or ``"log"`` (see ``jmeta.checkpointed_scan``).
    mask: which parameter leaves the inner loop adapts (``None``: all).
    direction: ``"gradient"`` (meta-gradient of the query loss) or
      ``"reptile"`` (``initial - adapted``, Nichol et al. 2018).
    second_order_steps: only the last ``second_order_steps`` inner steps carry
      second-order terms, the earlier ones are first order (``None``: all of
      them; see ``jmeta.inner_loop``).
    metrics_before: also report the query loss and aux metrics before
      adaptation (``query_loss_before``, ...), at the cost of one more forward
      pass over every task's query set; ``False`` drops them.
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to the
      adapted parameters (default: the model of ``loss_fn`` if it was made by
      ``jmeta.mse_loss`` and the like, see ``check_apply_fn``).
    name: the learner's name in error messages.

  Returns:
    A ``MetaLearner``.
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}.")
  default_steps = check_steps(steps)
  check_remat(remat)
  check_segment(second_order_steps, "second_order_steps")
  apply_fn = check_apply_fn(apply_fn, loss_fn)
  if direction not in ("gradient", "reptile"):
    raise ValueError(f"direction must be 'gradient' or 'reptile'; got {direction!r}.")

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    n = default_steps if steps is None else check_steps(steps)
    params = params_of(meta_params)
    return inner_loop(
        loss_fn, params, x, y, inner_opt_of(meta_params), n,
        first_order=first_order, remat=remat, mask=resolve_mask(mask, params),
        second_order_steps=second_order_steps)

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    del step
    adapted = adapt(meta_params, task.support_x, task.support_y, steps=steps)
    return query_metrics(loss_fn, params_of(meta_params), adapted.params, task, adapted,
                         metrics_before=metrics_before)

  if direction == "gradient":
    def task_grad(meta_params, task: Task, step=0):
      return jax.grad(task_loss, has_aux=True)(meta_params, task, step)
  else:
    def task_grad(meta_params, task: Task, step=0):
      del step
      params = params_of(meta_params)
      adapted = adapt(meta_params, task.support_x, task.support_y)
      _, metrics = query_metrics(loss_fn, params, adapted.params, task, adapted,
                                 metrics_before=metrics_before)
      diff = jax.tree.map(lambda a, b: a - b, params, jax.lax.stop_gradient(adapted.params))
      return diff, metrics

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad,
                     predict=adapted_predict(adapt, apply_fn, name))
