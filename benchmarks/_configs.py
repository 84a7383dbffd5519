"""Benchmark configurations, initial weights and task batches, in plain numpy.

Every implementation (jmeta and each PyTorch peer) is built from the same
``Config``, the same initial weights and the same task batches made here, so
the frameworks compute the same thing on the same numbers. Weights are kept in
one canonical layout, PyTorch's (``Linear.weight`` is ``(out, in)``,
``Conv2d.weight`` is ``(out, in, kh, kw)``); each side converts from it.

This module imports neither jax nor torch, so a worker subprocess pays only for
the framework it measures.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

ALGOS = ("maml", "anil", "protonet")


@dataclasses.dataclass(frozen=True)
class Config:
  """One meta-learning benchmark configuration.

  Attributes:
    name: a short id used in tables and file names.
    model: ``"mlp"`` (1-40-40-1 ReLU) or ``"conv"`` (4 x [conv3x3 64 'same',
      batch-stat norm with affine, ReLU, maxpool 2x2] + linear head).
    tasks: meta-batch size (tasks per meta-step).
    shots: support examples per task (per class for ``conv``).
    queries: query examples per task (per class for ``conv``).
    ways: classes per task (``conv`` only).
    inner_steps: inner SGD steps.
    inner_lr: inner SGD learning rate.
    outer_lr: outer Adam learning rate.
    first_order: first-order MAML (all configs here are second order).
    remat: jmeta only: ``jax.checkpoint`` each inner step.
    image: image side (``conv`` only; 28 for Omniglot).
    algo: ``"maml"`` (``first_order`` for FOMAML), ``"anil"`` (only the
      linear head adapts; ``conv`` only) or ``"protonet"`` (Prototypical
      Networks on the conv body, no inner loop; ``conv`` only).
  """

  name: str
  model: str
  tasks: int
  shots: int
  queries: int
  inner_steps: int
  inner_lr: float
  outer_lr: float = 1e-3
  ways: int = 1
  first_order: bool = False
  remat: bool = False
  image: int = 28
  algo: str = "maml"

  def __post_init__(self):
    if self.algo not in ALGOS:
      raise ValueError(f"algo must be one of {ALGOS}; got {self.algo!r}")
    if self.algo != "maml" and self.model != "conv":
      raise ValueError(f"algo {self.algo!r} needs model 'conv'; got {self.model!r}")

  def replace(self, **kw) -> "Config":
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @staticmethod
  def from_dict(d: dict[str, Any]) -> "Config":
    return Config(**d)


def sinusoid_config(inner_steps: int = 1, tasks: int = 25) -> Config:
  """Sinusoid MAML: MLP 1-40-40-1, 10 shots, 10 queries, inner SGD 0.01."""
  return Config(name=f"sinusoid-{inner_steps}step", model="mlp", tasks=tasks,
                shots=10, queries=10, inner_steps=inner_steps, inner_lr=0.01)


def omniglot_config(tasks: int = 32, inner_steps: int = 1) -> Config:
  """Omniglot 5-way 1-shot MAML, 15 queries per class, inner SGD 0.4."""
  return Config(name=f"omniglot-5w1s-mb{tasks}", model="conv", tasks=tasks,
                shots=1, queries=15, ways=5, inner_steps=inner_steps,
                inner_lr=0.4)


def conv_config(algo: str, ways: int = 5, tasks: int = 8, first_order: bool = False,
                shots: int = 1, queries: int = 15) -> Config:
  """The 4-block conv net on Omniglot-shaped episodes under ``algo``.

  One inner SGD step of 0.4 for MAML, FOMAML and ANIL (Finn et al.'s Omniglot
  setting); ProtoNets has no inner loop.
  """
  label = "fomaml" if algo == "maml" and first_order else algo
  return Config(name=f"conv-{label}-{ways}w{shots}s-mb{tasks}", model="conv", tasks=tasks,
                shots=shots, queries=queries, ways=ways, inner_steps=1, inner_lr=0.4,
                first_order=first_order, algo=algo)


# --------------------------------------------------------------------------
# Weights (canonical PyTorch layout), ordered as the torch modules list them.

def param_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
  """Canonical parameter names and shapes, in ``named_parameters`` order."""
  if cfg.model == "mlp":
    return {"l0.weight": (40, 1), "l0.bias": (40,),
            "l1.weight": (40, 40), "l1.bias": (40,),
            "l2.weight": (1, 40), "l2.bias": (1,)}
  if cfg.model == "conv":
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 1
    for i in range(4):
      shapes[f"conv{i}.weight"] = (64, c_in, 3, 3)
      shapes[f"conv{i}.bias"] = (64,)
      shapes[f"norm{i}.weight"] = (64,)
      shapes[f"norm{i}.bias"] = (64,)
      c_in = 64
    side = cfg.image
    for _ in range(4):
      side //= 2
    shapes["head.weight"] = (cfg.ways, 64 * side * side)
    shapes["head.bias"] = (cfg.ways,)
    return shapes
  raise ValueError(f"unknown model {cfg.model!r}")


def init_weights(cfg: Config, seed: int = 0) -> dict[str, np.ndarray]:
  """Initial weights (float64): Glorot-uniform kernels, zero biases, unit norms."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in param_shapes(cfg).items():
    if name.startswith("norm") and name.endswith("weight"):
      w = np.ones(shape)
    elif name.endswith("bias"):
      # Small non-zero biases so that a wrong bias gradient cannot hide.
      w = rng.uniform(-0.05, 0.05, size=shape)
    else:
      fan_out, fan_in = shape[0] * int(np.prod(shape[2:])), int(np.prod(shape[1:]))
      lim = math.sqrt(6.0 / (fan_in + fan_out))
      w = rng.uniform(-lim, lim, size=shape)
    out[name] = w.astype(np.float64)
  return out


# --------------------------------------------------------------------------
# Task batches: tuples (support_x, support_y, query_x, query_y) with a leading
# task axis. Sinusoid x/y are (tasks, n, 1) float; conv images are NCHW
# (tasks, n, 1, 28, 28) float with int64 labels (tasks, n).

def make_batches(cfg: Config, n_batches: int, seed: int = 1,
                 dtype=np.float32) -> list[tuple[np.ndarray, ...]]:
  """``n_batches`` task batches of ``cfg``; the same seed gives the same data."""
  rng = np.random.default_rng(seed)
  return [_one_batch(cfg, rng, dtype) for _ in range(n_batches)]


def _one_batch(cfg: Config, rng: np.random.Generator, dtype):
  t = cfg.tasks
  if cfg.model == "mlp":
    amp = rng.uniform(0.1, 5.0, size=(t, 1, 1))
    phase = rng.uniform(0.0, math.pi, size=(t, 1, 1))
    sx = rng.uniform(-5.0, 5.0, size=(t, cfg.shots, 1))
    qx = rng.uniform(-5.0, 5.0, size=(t, cfg.queries, 1))
    sy, qy = amp * np.sin(sx - phase), amp * np.sin(qx - phase)
    return tuple(a.astype(dtype) for a in (sx, sy, qx, qy))
  # Random images of Omniglot's shape; labels 0..ways-1, each class `shots`
  # (support) and `queries` (query) times.
  n_s, n_q = cfg.ways * cfg.shots, cfg.ways * cfg.queries
  sx = rng.random((t, n_s, 1, cfg.image, cfg.image)).astype(dtype)
  qx = rng.random((t, n_q, 1, cfg.image, cfg.image)).astype(dtype)
  sy = np.tile(np.repeat(np.arange(cfg.ways), cfg.shots), (t, 1)).astype(np.int64)
  qy = np.tile(np.repeat(np.arange(cfg.ways), cfg.queries), (t, 1)).astype(np.int64)
  return sx, sy, qx, qy
