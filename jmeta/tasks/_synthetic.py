"""Synthetic task families: sinusoid, linear and logistic regression."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jmeta._base import Task


class TaskFamily(NamedTuple):
  """A distribution over tasks, as pure functions of explicit keys.

  Attributes:
    sample_params: ``sample_params(key) -> params`` of one task (a pytree, e.g.
      amplitude and phase).
    make_task: ``make_task(key, params) -> Task``: draws the support and query
      sets of the task with those parameters.
    target_fn: ``target_fn(params, x) -> y``: the noiseless target function.
    name: a short name.
    settings: ``(name, value)`` pairs of the family's settings (shots,
      queries, ...), reported by ``describe()``.
  """

  sample_params: Callable[[jax.Array], Any]
  make_task: Callable[[jax.Array, Any], Task]
  target_fn: Callable[[Any, jax.Array], jax.Array]
  name: str
  settings: tuple[tuple[str, Any], ...] = ()

  def describe(self) -> dict[str, Any]:
    """The family's name and settings (a task source's description)."""
    return {"name": self.name, **dict(self.settings)}

  def sample(self, key: jax.Array) -> Task:
    """Draws one task (``vmap`` it over split keys for a batch)."""
    k_params, k_data = jax.random.split(key)
    return self.make_task(k_data, self.sample_params(k_params))

  def sample_batch(self, key: jax.Array, n: int) -> Task:
    """Draws ``n`` tasks; every leaf gets a leading axis of size ``n``."""
    if not isinstance(n, int) or n < 1:
      raise ValueError(f"n (the number of tasks) must be a positive int; got {n!r}.")
    return jax.vmap(self.sample)(jax.random.split(key, n))


def _check_counts(shots: Any, queries: Any) -> None:
  for name, v in (("shots", shots), ("queries", queries)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a positive int; got {v!r}.")


def sinusoid(
    shots: int = 10,
    queries: int = 10,
    *,
    amplitude: tuple[float, float] = (0.1, 5.0),
    phase: tuple[float, float] = (0.0, math.pi),
    x_range: tuple[float, float] = (-5.0, 5.0),
    dtype: Any = jnp.float32,
) -> TaskFamily:
  """Sinusoid regression as in Finn et al. (2017), section 5.1.

  A task is ``y = A sin(x - phi)`` with ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``
  and inputs ``x ~ U[-5, 5]``; the loss is the mean squared error.

  Args:
    shots: support examples per task (K).
    queries: query examples per task.
    amplitude: range of A.
    phase: range of phi.
    x_range: range of x.
    dtype: floating dtype of the data.

  Returns:
    A ``TaskFamily``; tasks have ``x`` and ``y`` of shape ``(n, 1)``.

  References:
    Finn, Abbeel and Levine, ICML 2017.
  """
  _check_counts(shots, queries)

  def sample_params(key):
    ka, kp = jax.random.split(key)
    a = jax.random.uniform(ka, (), dtype, *amplitude)
    p = jax.random.uniform(kp, (), dtype, *phase)
    return {"amplitude": a, "phase": p}

  def target_fn(params, x):
    return params["amplitude"] * jnp.sin(x - params["phase"])

  def make_task(key, params):
    x = jax.random.uniform(key, (shots + queries, 1), dtype, *x_range)
    y = target_fn(params, x)
    return Task(x[:shots], y[:shots], x[shots:], y[shots:])

  return TaskFamily(sample_params, make_task, target_fn, "sinusoid",
                    (("shots", shots), ("queries", queries)))


def linear_regression(
    shots: int = 10,
    queries: int = 10,
    *,
    dim: int = 5,
    noise: float = 0.0,
    dtype: Any = jnp.float32,
) -> TaskFamily:
  """Linear regression tasks ``y = x @ w + b + noise`` with ``w, b ~ N(0, 1)``.

  Inputs are ``x ~ N(0, I_dim)``; targets have shape ``(n, 1)``; use the squared
  error (``jmeta.mse_loss``).

  Args:
    shots: support examples per task.
    queries: query examples per task.
    dim: input dimension.
    noise: standard deviation of Gaussian target noise.
    dtype: floating dtype.
  """
  _check_counts(shots, queries)
  if not isinstance(dim, int) or dim < 1:
    raise ValueError(f"dim must be a positive int; got {dim!r}.")

  def sample_params(key):
    kw, kb = jax.random.split(key)
    return {"w": jax.random.normal(kw, (dim, 1), dtype), "b": jax.random.normal(kb, (), dtype)}

  def target_fn(params, x):
    return x @ params["w"] + params["b"]

  def make_task(key, params):
    kx, kn = jax.random.split(key)
    x = jax.random.normal(kx, (shots + queries, dim), dtype)
    y = target_fn(params, x) + noise * jax.random.normal(kn, (shots + queries, 1), dtype)
    return Task(x[:shots], y[:shots], x[shots:], y[shots:])

  return TaskFamily(sample_params, make_task, target_fn, "linear",
                    (("shots", shots), ("queries", queries), ("dim", dim), ("noise", noise)))


def logistic_regression(
    shots: int = 10,
    queries: int = 10,
    *,
    dim: int = 5,
    scale: float = 3.0,
    dtype: Any = jnp.float32,
) -> TaskFamily:
  """Binary logistic-regression tasks.

  A task has a direction ``w ~ N(0, I)/sqrt(dim)`` and bias ``b ~ N(0, 1)``;
  inputs ``x ~ N(0, I_dim)``; labels ``y ~ Bernoulli(sigmoid(scale (x @ w + b)))``
  in {0, 1} (int32, shape ``(n,)``); use ``jmeta.binary_cross_entropy_loss``.

  Args:
    shots: support examples per task.
    queries: query examples per task.
    dim: input dimension.
    scale: sharpness of the class boundary (larger: less label noise).
    dtype: floating dtype of the inputs.
  """
  _check_counts(shots, queries)
  if not isinstance(dim, int) or dim < 1:
    raise ValueError(f"dim must be a positive int; got {dim!r}.")

  def sample_params(key):
    kw, kb = jax.random.split(key)
    w = jax.random.normal(kw, (dim,), dtype) / jnp.sqrt(jnp.asarray(dim, dtype))
    return {"w": w, "b": jax.random.normal(kb, (), dtype)}

  def target_fn(params, x):
    """The probability of label 1."""
    return jax.nn.sigmoid(scale * (x @ params["w"] + params["b"]))

  def make_task(key, params):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (shots + queries, dim), dtype)
    y = jax.random.bernoulli(ky, target_fn(params, x)).astype(jnp.int32)
    return Task(x[:shots], y[:shots], x[shots:], y[shots:])

  return TaskFamily(sample_params, make_task, target_fn, "logistic",
                    (("shots", shots), ("queries", queries), ("dim", dim), ("scale", scale)))
