"""Throughput of jmeta's on-device episode sampler on real Omniglot.

Usage::

  python benchmarks/episodes.py [--data-dir DIR] [--iters 200]

Prepares Omniglot (array_record, no TensorFlow) into ``--data-dir`` from the
archives in ``$JMETA_OMNIGLOT_DIR`` (default ``<repo>/../shared/data/omniglot``),
loads the Vinyals meta-training classes with rotations, and times jitted
``sample_episodes`` (compile time apart from steady state).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import time
from typing import Any, Optional

import jax

from jmeta.tasks._episodes import sample_episodes

REPO = pathlib.Path(__file__).resolve().parents[1]
OMNIGLOT_DIR = pathlib.Path(os.environ.get("JMETA_OMNIGLOT_DIR",
                                           REPO.parent / "shared" / "data" / "omniglot"))


def load_omniglot_train(data_dir: str | os.PathLike[str]) -> tuple[jax.Array, float]:
  """Vinyals meta-training classes with rotations and the seconds the load took.

  Returns:
    ``(classes, seconds)``: ``classes`` of shape ``(4400, 20, 28, 28, 1)``
    float32 (1,100 characters x 4 rotations; 100 characters are validation).
  """
  from jmeta.data import load_omniglot  # pylint: disable=g-import-not-at-top
  os.makedirs(data_dir, exist_ok=True)
  start = time.perf_counter()
  splits = load_omniglot(data_dir, manual_dir=OMNIGLOT_DIR, split="vinyals", rotations=True)
  splits.train.block_until_ready()
  return splits.train, time.perf_counter() - start


def measure_jmeta_episodes(
    classes: Optional[jax.Array] = None,
    *,
    data_dir: Optional[str | os.PathLike[str]] = None,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    batch: int = 32,
    iters: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
  """Times jitted ``sample_episodes``.

  Args:
    classes: class-indexed images ``(C, E, H, W, 1)``; if ``None``, real
      Omniglot is loaded from ``data_dir`` (prepared there if needed).
    data_dir: TFDS data directory for Omniglot (default
      ``benchmarks/results/tmp/tfds``).
    ways: classes per episode.
    shots: support examples per class.
    queries: query examples per class.
    batch: episodes per call.
    iters: timed calls after the compiling one.
    seed: PRNG seed.

  Returns:
    A dict with ``episodes_per_s`` and ``batches_per_s`` (steady state: calls
    of a jitted step that splits the key and samples a batch, dispatched
    asynchronously, synchronised once at the end),
    ``compile_s`` (first call, compile included), ``load_s`` (``None`` if
    ``classes`` was given), the configuration and the JAX backend.
  """
  load_s = None
  if classes is None:
    classes, load_s = load_omniglot_train(data_dir or REPO / "benchmarks" / "results" / "tmp" /
                                          "tfds")
  sampler = functools.partial(sample_episodes, ways=ways, shots=shots, queries=queries,
                              batch=batch)

  @jax.jit
  def step(key, classes):  # as in a training loop: the next key is split on device
    key, sample_key = jax.random.split(key)
    return key, sampler(sample_key, classes)

  key = jax.random.key(seed)
  start = time.perf_counter()
  key, task = jax.block_until_ready(step(key, classes))
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(iters):
    key, task = step(key, classes)
  jax.block_until_ready(task)
  steady_s = time.perf_counter() - start
  return {
      "episodes_per_s": iters * batch / steady_s,
      "batches_per_s": iters / steady_s,
      "compile_s": compile_s,
      "load_s": load_s,
      "ways": ways, "shots": shots, "queries": queries, "batch": batch, "iters": iters,
      "classes_shape": tuple(classes.shape),
      "backend": jax.default_backend(),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=str(REPO / "benchmarks" / "results" / "tmp" / "tfds"))
  parser.add_argument("--iters", type=int, default=200)
  args = parser.parse_args()
  print(json.dumps(measure_jmeta_episodes(data_dir=args.data_dir, iters=args.iters), indent=2))


if __name__ == "__main__":
  main()
