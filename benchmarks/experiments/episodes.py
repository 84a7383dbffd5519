"""Throughput of jmeta's on-device episode sampler on real Omniglot.

Usage::

  python -m benchmarks.experiments.episodes [--data-dir DIR] [--iters 200]

Prepares Omniglot (array_record, no TensorFlow) into ``--data-dir`` from the
archives in ``$JMETA_OMNIGLOT_DIR`` (default ``<repo>/../shared/data/omniglot``),
loads the Vinyals meta-training classes with rotations, and times jitted
``sample_episodes`` (compile time apart from steady state). With ``--l2l`` it
also times learn2learn's ``TaskDataset`` (``NWays``, ``KShots``, ``LoadData``,
``RemapLabels``, as in learn2learn's Omniglot examples) on the very same images,
held in a torch ``TensorDataset``: episodes per second, one episode per call,
as a PyTorch training loop draws them.
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

from jmeta import sample_episodes

README_FIGURE = ("README 'Omniglot': the episode-sampling line, jmeta's sample_episodes against "
                 "learn2learn's TaskDataset (benchmarks/results/episodes.json)")

REPO = pathlib.Path(__file__).resolve().parents[2]
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


def measure_l2l_episodes(classes, *, ways: int = 5, shots: int = 1, queries: int = 15,
                         episodes: int = 500, seed: int = 0) -> dict[str, Any]:
  """Times learn2learn's ``TaskDataset.sample()`` on the same class-indexed images."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from benchmarks.peers._compat import import_peer, setup_torch  # pylint: disable=g-import-not-at-top
  setup_torch(2)
  l2l = import_peer("learn2learn")
  import torch  # pylint: disable=g-import-not-at-top
  torch.manual_seed(seed)
  arr = np.asarray(classes)  # (C, E, H, W, 1)
  c, e = arr.shape[:2]
  start = time.perf_counter()
  x = torch.from_numpy(arr.reshape(c * e, *arr.shape[2:]).transpose(0, 3, 1, 2).copy())
  y = torch.arange(c).repeat_interleave(e)
  meta = l2l.data.MetaDataset(torch.utils.data.TensorDataset(x, y))
  transforms = [l2l.data.transforms.NWays(meta, ways),
                l2l.data.transforms.KShots(meta, shots + queries),
                l2l.data.transforms.LoadData(meta),
                l2l.data.transforms.RemapLabels(meta)]
  tasks = l2l.data.TaskDataset(meta, task_transforms=transforms, num_tasks=-1)
  setup_s = time.perf_counter() - start
  tasks.sample()
  start = time.perf_counter()
  for _ in range(episodes):
    tasks.sample()
  steady_s = time.perf_counter() - start
  return {"episodes_per_s": episodes / steady_s, "setup_s": setup_s, "episodes": episodes,
          "ways": ways, "shots": shots, "queries": queries}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", default=str(REPO / "benchmarks" / "results" / "tmp" / "tfds"))
  parser.add_argument("--iters", type=int, default=200)
  parser.add_argument("--l2l", action="store_true", help="also time learn2learn's TaskDataset")
  args = parser.parse_args()
  classes, load_s = load_omniglot_train(args.data_dir)
  out = {"jmeta": measure_jmeta_episodes(classes, iters=args.iters), "load_s": load_s}
  if args.l2l:
    try:
      out["learn2learn"] = measure_l2l_episodes(classes)
      out["ratio_jmeta_over_l2l"] = (out["jmeta"]["episodes_per_s"]
                                     / out["learn2learn"]["episodes_per_s"])
    except Exception as e:  # noqa: BLE001 - report, do not fail
      out["learn2learn"] = {"error": f"{type(e).__name__}: {e}"[:300]}
  print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
  main()
