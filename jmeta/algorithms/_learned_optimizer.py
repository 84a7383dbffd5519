"""Learned optimizers: a coordinate-wise MLP trained through unrolled optimisation."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from jmeta._base import AdaptResult, MetaLearner, PyTree, Task
from jmeta._inner import LossFn, check_segment, inner_loop
from jmeta._losses import ApplyFn
from jmeta._remat import Remat, check_remat
from jmeta.algorithms._gradient_based import (adapted_predict, check_apply_fn, check_steps,
                                              query_metrics)

OptParams = PyTree


class LearnedOptimizerState(NamedTuple):
  """State of the learned optimizer (per parameter leaf unless noted).

  Attributes:
    count: number of updates taken, int32 scalar.
    momenta: one pytree of gradient moving averages per decay.
    rms: moving average of squared gradients.
  """

  count: jax.Array
  momenta: tuple[PyTree, ...]
  rms: PyTree


class LearnedOptimizer(NamedTuple):
  """A learned optimizer: its parameters' initialiser and its update rule.

  Attributes:
    init: ``init(key) -> opt_params``, the MLP's parameters.
    transform: ``transform(opt_params) -> optax.GradientTransformation``.
    num_features: number of input features per coordinate.
  """

  init: Callable[[jax.Array], OptParams]
  transform: Callable[[OptParams], optax.GradientTransformation]
  num_features: int


def _preprocess(x: jax.Array, p: float = 10.0) -> tuple[jax.Array, jax.Array]:
  """Andrychowicz et al. (2016) appendix A: ``(log|x| / p, sign x)`` or ``(-1, e^p x)``."""
  big = jnp.abs(x) >= math.exp(-p)
  safe = jnp.where(big, jnp.abs(x), 1.0)
  mag = jnp.where(big, jnp.log(safe) / p, -1.0)
  sgn = jnp.where(big, jnp.sign(x), math.exp(p) * x)
  return mag, sgn


def _check_config(hidden, decays, rms_decay, time_scales, step_mult, mag_mult):
  if not all(isinstance(h, int) and h >= 1 for h in hidden):
    raise ValueError(f"hidden must be a sequence of positive ints; got {hidden!r}.")
  if len(decays) == 0 or not all(0.0 <= d < 1.0 for d in decays):
    raise ValueError(f"decays must be a non-empty sequence of numbers in [0, 1); got {decays!r}.")
  if not 0.0 < rms_decay < 1.0:
    raise ValueError(f"rms_decay must be in (0, 1); got {rms_decay!r}.")
  if not all(s > 0 for s in time_scales):
    raise ValueError(f"time_scales must be positive numbers; got {time_scales!r}.")
  if not step_mult > 0 or not mag_mult > 0:
    raise ValueError(f"step_mult and mag_mult must be positive; got {step_mult!r}, {mag_mult!r}.")


def mlp_optimizer(
    *,
    hidden: Sequence[int] = (32,),
    decays: Sequence[float] = (0.5, 0.9, 0.99),
    rms_decay: float = 0.99,
    time_scales: Sequence[float] = (3.0, 10.0, 30.0, 100.0),
    step_mult: float = 1e-2,
    mag_mult: float = 1e-1,
    eps: float = 1e-8,
) -> LearnedOptimizer:
  """A coordinate-wise MLP optimizer in the style of Andrychowicz et al. and Metz et al.

  Every parameter coordinate is updated by the same small MLP (so the optimizer
  applies to any model). Its features for a coordinate are the gradient and its
  moving averages at each of ``decays``, each preprocessed into ``(log|x|/10,
  sign x)`` as in Andrychowicz et al. (2016); the same quantities divided by
  the root of a bias-corrected moving average of squared gradients (Adam-like,
  scale-free); and ``tanh(t / s)`` for each of ``time_scales`` (Metz et al.
  2020), which lets it learn a schedule. The MLP outputs a direction ``d`` and
  a log-magnitude ``m``; the update is ``step_mult * d * exp(mag_mult * m)``
  (Metz et al. 2019).

  Args:
    hidden: widths of the MLP's hidden (ReLU) layers.
    decays: decay rates of the gradient moving averages (momenta).
    rms_decay: decay of the squared-gradient average.
    time_scales: time scales of the ``tanh`` step-count features.
    step_mult: scale of the update.
    mag_mult: scale of the log-magnitude output.
    eps: added under the square root.

  Returns:
    A ``LearnedOptimizer`` whose ``transform(opt_params)`` is an optax
    ``GradientTransformation`` (use it in any training loop, or as the inner
    optimizer of ``jmeta.maml``).

  References:
    Andrychowicz et al., "Learning to learn by gradient descent by gradient
    descent", NeurIPS 2016. Metz et al., "Understanding and correcting
    pathologies in the training of learned optimizers", ICML 2019.
  """
  hidden, decays, time_scales = tuple(hidden), tuple(float(d) for d in decays), tuple(time_scales)
  _check_config(hidden, decays, rms_decay, time_scales, step_mult, mag_mult)
  k = len(decays)
  num_features = 2 * (1 + k) + (1 + k) + len(time_scales)
  widths = (num_features,) + hidden + (2,)

  def init(key: jax.Array) -> OptParams:
    keys = jax.random.split(key, len(widths) - 1)
    layers = []
    for i, (kk, a, b) in enumerate(zip(keys, widths[:-1], widths[1:])):
      scale = 1e-2 if i == len(widths) - 2 else 1.0
      w = scale * jax.random.normal(kk, (a, b)) / math.sqrt(a)
      layers.append({"w": w, "b": jnp.zeros((b,))})
    return {"layers": layers}

  def check_params(opt_params):
    try:
      first = opt_params["layers"][0]["w"]
      shapes = [tuple(l["w"].shape) for l in opt_params["layers"]]
    except (KeyError, TypeError, IndexError) as e:
      raise ValueError("opt_params must be {'layers': [{'w', 'b'}, ...]} as made by"
                       " mlp_optimizer(...).init(key).") from e
    if first.shape[0] != num_features or shapes[-1][-1] != 2:
      raise ValueError(
          f"opt_params do not fit this optimizer: it has {num_features} features"
          f" (decays={decays}, time_scales={time_scales}) and 2 outputs, the params'"
          f" layers are {shapes}; build both with the same mlp_optimizer config.")

  def apply_mlp(opt_params, feats):
    h = feats
    layers = opt_params["layers"]
    for layer in layers[:-1]:
      h = jax.nn.relu(h @ layer["w"].astype(h.dtype) + layer["b"].astype(h.dtype)[None, :])
    return h @ layers[-1]["w"].astype(h.dtype) + layers[-1]["b"].astype(h.dtype)[None, :]

  def transform(opt_params: OptParams) -> optax.GradientTransformation:
    check_params(opt_params)

    def init_fn(params):
      zeros = lambda: jax.tree.map(jnp.zeros_like, params)
      return LearnedOptimizerState(jnp.zeros((), jnp.int32), tuple(zeros() for _ in decays), zeros())

    def update_fn(updates, state, params=None):
      del params
      count = state.count + 1
      momenta = tuple(jax.tree.map(lambda m, g, d=d: d * m + (1 - d) * g, ms, updates)
                      for d, ms in zip(decays, state.momenta))
      rms = jax.tree.map(lambda v, g: rms_decay * v + (1 - rms_decay) * g * g, state.rms, updates)

      def leaf(g, v, *ms):
        dt = g.dtype
        c = count.astype(dt)
        inv = jax.lax.rsqrt(v / (1 - rms_decay ** c) + eps)
        raw = (g,) + ms
        feats = [f for x in raw for f in _preprocess(x)] + [x * inv for x in raw]
        feats += [jnp.full(g.shape, jnp.tanh(c / s), dt) for s in time_scales]
        out = apply_mlp(opt_params, jnp.stack(feats, axis=-1).reshape(-1, num_features))
        step = step_mult * out[:, 0] * jnp.exp(mag_mult * out[:, 1])
        return step.reshape(g.shape)

      new = jax.tree.map(leaf, updates, rms, *momenta)
      return new, LearnedOptimizerState(count, momenta, rms)

    return optax.GradientTransformation(init_fn, update_fn)

  return LearnedOptimizer(init=init, transform=transform, num_features=num_features)


def learned_optimizer_transform(opt_params: OptParams, **config: Any) -> optax.GradientTransformation:
  """The trained optimizer as an optax transformation.

  Args:
    opt_params: parameters from ``mlp_optimizer(**config).init`` (or from the
      ``"opt"`` entry of a trained ``learned_optimizer`` learner).
    **config: the ``mlp_optimizer`` configuration they were made with.

  Returns:
    ``mlp_optimizer(**config).transform(opt_params)``.
  """
  return mlp_optimizer(**config).transform(opt_params)


def learned_optimizer(
    loss_fn: LossFn,
    optimizer: Optional[LearnedOptimizer] = None,
    *,
    steps: int = 20,
    truncation: Optional[int] = None,
    objective: str = "unroll",
    first_order: bool = False,
    remat: Remat = False,
    learn_init: bool = False,
    apply_fn: Optional[ApplyFn] = None,
) -> MetaLearner:
  """Meta-trains a learned optimizer by differentiating through its unrolls.

  Each task trains the model from the initial parameters with ``steps`` steps
  of ``optimizer`` on its support set. With ``objective="unroll"`` (Andrychowicz
  et al.) the outer loss is the mean support loss over the unroll (after each
  step); with ``"query"`` it is the query loss at the end (as in MAML). The
  meta-parameters are ``{"params": initial model params, "opt": optimizer
  params}``; the initialisation is held fixed (its meta-gradient is zero) unless
  ``learn_init``. Drive it with ``jmeta.make_meta_step``; afterwards
  ``optimizer.transform(state.meta_params["opt"])`` is the trained optimizer.

  Args:
    loss_fn: ``loss_fn(params, x, y)`` of the optimizee.
    optimizer: a ``LearnedOptimizer`` (default ``mlp_optimizer()``).
    steps: length of the unroll.
    truncation: backpropagate through segments of this many steps only
      (truncated BPTT, see ``jmeta.inner_loop``): the optimizer state persists
      across segments, gradients do not flow from one into the previous. The
      last segment is shorter when it does not divide the number of steps.
      Values are the same as without it.
    objective: ``"unroll"`` or ``"query"``.
    first_order: treat the optimizee's gradients as constants (as Andrychowicz
      et al. did: no second derivatives).
    remat: memory policy of the unroll (``False``, ``True``, ``"sqrt"``,
      ``"log"``; see ``jmeta.checkpointed_scan``). Same numbers for all.
    learn_init: also meta-learn the initial parameters.
    apply_fn: the model ``apply_fn(params, x)`` that ``predict`` applies to
      the trained parameters (default: the model of a loss made by
      ``jmeta.mse_loss`` / ``cross_entropy_loss``).

  Returns:
    A ``MetaLearner``; ``init(key, params)`` draws the optimizer's parameters
    from ``key``.

  References:
    Andrychowicz et al., "Learning to learn by gradient descent by gradient
    descent", NeurIPS 2016.
  """
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}.")
  lopt = mlp_optimizer() if optimizer is None else optimizer
  if not isinstance(lopt, LearnedOptimizer):
    raise TypeError(f"optimizer must be a LearnedOptimizer (e.g. mlp_optimizer()); got {type(lopt).__name__}.")
  default_steps = check_steps(steps)
  if objective not in ("unroll", "query"):
    raise ValueError(f"objective must be 'unroll' or 'query'; got {objective!r}.")
  if objective == "unroll" and default_steps == 0:
    raise ValueError("objective='unroll' needs steps >= 1.")
  check_segment(truncation, "truncation")
  check_remat(remat)
  apply_fn = check_apply_fn(apply_fn, loss_fn)

  def init(key, params):
    return {"params": params, "opt": lopt.init(key)}

  def params_of(meta_params):
    p = meta_params["params"]
    return p if learn_init else jax.lax.stop_gradient(p)

  def adapt(meta_params, x, y, *, steps: Optional[int] = None) -> AdaptResult:
    n = default_steps if steps is None else check_steps(steps)
    return inner_loop(loss_fn, params_of(meta_params), x, y, lopt.transform(meta_params["opt"]), n,
                      first_order=first_order, remat=remat, truncation=truncation)

  def task_loss(meta_params, task: Task, step=0, *, steps: Optional[int] = None):
    del step
    adapted = adapt(meta_params, task.support_x, task.support_y, steps=steps)
    loss, metrics = query_metrics(loss_fn, params_of(meta_params), adapted.params, task, adapted)
    unroll_loss = jnp.mean(adapted.losses[1:]) if adapted.losses.shape[0] > 1 else adapted.losses[0]
    metrics["unroll_loss"] = unroll_loss
    return (unroll_loss if objective == "unroll" else loss), metrics

  def task_grad(meta_params, task: Task, step=0):
    return jax.grad(task_loss, has_aux=True)(meta_params, task, step)

  return MetaLearner(init=init, adapt=adapt, task_loss=task_loss, task_grad=task_grad,
                     predict=adapted_predict(adapt, apply_fn, "learned_optimizer"))
