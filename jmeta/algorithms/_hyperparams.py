"""Meta-learned hyperparameters: hypergradients through unrolled training, and online (HD)."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from jmeta._base import MetaLearner, MetaParams
from jmeta._inner import LossFn
from jmeta._losses import ApplyFn
from jmeta._remat import Remat
from jmeta.algorithms._gradient_based import check_steps, gradient_based


def sgd_with_weight_decay(learning_rate: Any, weight_decay: Any = 0.0) -> optax.GradientTransformation:
  """SGD on the loss plus ``weight_decay / 2 * |params|^2``.

  The update is ``-learning_rate * (grad + weight_decay * params)``.
  """
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


def hyperparams_of(meta_params: MetaParams) -> dict[str, jax.Array]:
  """The (positive) hyperparameters held by ``learned_hyperparams``' meta-parameters.

  Returns:
    ``{name: value}``; a per-step hyperparameter is an array of shape ``(steps,)``.
  """
  return {k: jnp.exp(v) for k, v in meta_params["log_hyperparams"].items()}


def learned_hyperparams(
    loss_fn: LossFn,
    optimizer: Optional[Callable[..., optax.GradientTransformation]] = None,
    *,
    init: Optional[Mapping[str, float]] = None,
    per_step: Sequence[str] = (),
    steps: int = 10,
    learn_init: bool = False,
    first_order: bool = False,
    remat: Remat = False,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Learns an inner optimizer's hyperparameters by hypergradient descent.

  The inner loop trains the model for ``steps`` steps of
  ``optax.inject_hyperparams(optimizer)(**hyperparams)`` on the support
  (training) set; the outer objective is the query (validation) loss at the
  end, and its gradient with respect to the hyperparameters (reverse-mode
  through the whole unrolled training, Maclaurin et al. 2015; Franceschi et al.
  2017) drives them through ``jmeta.make_meta_step``. The hyperparameters are
  learned in log space (so they stay positive) and live in the meta-parameters
  ``{"params": model init, "log_hyperparams": {name: log value}}``; a name in
  ``per_step`` gets one value per inner step (a learned schedule, injected by
  step count). A single training/validation split is a batch of one task.

  The model initialisation is held fixed (zero meta-gradient) unless
  ``learn_init``; use an outer optimizer without weight decay on it.

  Args:
    loss_fn: ``loss_fn(params, x, y)``.
    optimizer: a factory ``optimizer(**hyperparams) -> GradientTransformation``
      (default ``sgd_with_weight_decay``; any optax factory, e.g. ``optax.adam``).
    init: initial values ``{name: positive float}`` of the learned
      hyperparameters, named as ``optimizer``'s arguments (default
      ``{"learning_rate": 0.01}``).
    per_step: names of ``init`` learned as one value per inner step (an
      ``adapt`` with more steps keeps using the last value).
    steps: number of inner (training) steps.
    learn_init: also learn the model's initialisation (as MAML).
    first_order: drop second-order terms (the learning rates still get
      gradients through the updates).
    remat: memory policy of the inner unroll (``False``, ``True``, ``"sqrt"``,
      ``"log"``; see ``jmeta.checkpointed_scan``). Same numbers for all.
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the adapted parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  Returns:
    A ``MetaLearner``; ``hyperparams_of(meta_params)`` reads the values.

  Examples:
    >>> learner = learned_hyperparams(loss_fn, init={"learning_rate": 1e-3,
    ...                               "weight_decay": 1e-4}, steps=20)
    >>> step = jmeta.make_meta_step(learner, optax.adam(0.1))

  References:
    Maclaurin, Duvenaud and Adams, "Gradient-based Hyperparameter Optimization
    through Reversible Learning", ICML 2015. Franceschi, Donini, Frasconi and
    Pontil, "Forward and Reverse Gradient-Based Hyperparameter Optimization",
    ICML 2017.
  """
  default_steps = check_steps(steps)
  factory = sgd_with_weight_decay if optimizer is None else optimizer
  if not callable(factory):
    raise TypeError(f"optimizer must be a factory of optax transformations; got {type(factory).__name__}.")
  init_values = {"learning_rate": 0.01} if init is None else dict(init)
  if not init_values:
    raise ValueError("init must name at least one hyperparameter to learn.")
  for name, v in init_values.items():
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or not math.isfinite(v):
      raise ValueError(f"init[{name!r}] must be a positive float (learned in log space); got {v!r}.")
  per_step = tuple(per_step)
  unknown = [n for n in per_step if n not in init_values]
  if unknown:
    raise ValueError(f"per_step names {unknown} are not in init {sorted(init_values)}.")
  if per_step and default_steps == 0:
    raise ValueError("per_step hyperparameters need steps >= 1.")
  try:  # fail before tracing if the factory does not take these names
    factory(**init_values)
  except TypeError as e:
    raise ValueError(f"optimizer does not accept the hyperparameters {sorted(init_values)}: {e}") from e

  def meta_init(key, params):
    del key
    dtype = jnp.result_type(*jax.tree.leaves(params))
    logs = {}
    for name, v in init_values.items():
      shape = (default_steps,) if name in per_step else ()
      logs[name] = jnp.full(shape, math.log(v), dtype)
    return {"params": params, "log_hyperparams": logs}

  def params_of(meta_params):
    p = meta_params["params"]
    return p if learn_init else jax.lax.stop_gradient(p)

  def inner_opt_of(meta_params):
    values = {}
    for name, log_v in meta_params["log_hyperparams"].items():
      if name in per_step:
        values[name] = lambda count, lv=log_v: jnp.exp(lv[jnp.minimum(count, lv.shape[0] - 1)])
      else:
        values[name] = jnp.exp(log_v)
    return optax.inject_hyperparams(factory)(**values)

  return gradient_based(loss_fn, init=meta_init, params_of=params_of, inner_opt_of=inner_opt_of,
                        steps=default_steps, first_order=first_order, remat=remat,
                        apply_fn=apply_fn, name="learned_hyperparams")


class HypergradientSGDState(NamedTuple):
  """State of ``hypergradient_sgd``.

  Attributes:
    learning_rate: the current learning rate (scalar).
    prev_grads: the previous step's gradients.
  """

  learning_rate: jax.Array
  prev_grads: Any


def hypergradient_sgd(learning_rate: float, hyper_lr: float) -> optax.GradientTransformation:
  """SGD whose learning rate follows online hypergradient descent (SGD-HD).

  At step ``t`` the learning rate moves along the hypergradient of the current
  loss with respect to the previous step's rate,
  ``lr_t = lr_{t-1} + hyper_lr * <g_t, g_{t-1}>``, then the update is
  ``-lr_t * g_t``.

  Args:
    learning_rate: initial learning rate.
    hyper_lr: step size of the learning rate's own updates.

  Returns:
    An optax ``GradientTransformation`` (the current rate is in its state).

  References:
    Baydin, Cornish, Martinez Rubio, Schmidt and Wood, "Online Learning Rate
    Adaptation with Hypergradient Descent", ICLR 2018.
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be positive; got {learning_rate!r}.")
  if not hyper_lr >= 0:
    raise ValueError(f"hyper_lr must be non-negative; got {hyper_lr!r}.")

  def init_fn(params):
    dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else jnp.float32
    return HypergradientSGDState(jnp.asarray(learning_rate, dtype), jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    del params
    dots = jax.tree.leaves(jax.tree.map(lambda g, h: jnp.sum(g * h), updates, state.prev_grads))
    lr = state.learning_rate + hyper_lr * sum(dots)
    new = jax.tree.map(lambda g: -lr.astype(g.dtype) * g, updates)
    return new, HypergradientSGDState(lr, updates)

  return optax.GradientTransformation(init_fn, update_fn)
