"""Importing the peers beside a CPU build of torch, and their versions.

The PyPI torchvision wheel is built against CUDA torch: beside a CPU torch its
C++ extension does not load, and ``import torchvision`` then fails while
registering fake kernels for ``torchvision::nms``/``qnms`` ("operator
torchvision::nms does not exist"). learn2learn imports torchvision, so before
the first import we declare the schemas of those two operators (no kernels:
the peers never call them). With a matching CPU torchvision this does nothing.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
from typing import Any, Optional

_LIB: Any = None  # keeps the torch.library.Library alive


def torch_device() -> str:
  """Where the peers run: ``BENCH_TORCH_DEVICE`` (``cpu``, the default, or ``cuda``)."""
  device = os.environ.get("BENCH_TORCH_DEVICE", "cpu") or "cpu"
  if device not in ("cpu", "cuda"):
    raise ValueError(f"BENCH_TORCH_DEVICE must be 'cpu' or 'cuda'; got {device!r}")
  return device


def setup_torch(threads: int) -> None:
  """Sets torch's intra-op threads (and one inter-op thread) once."""
  import torch
  torch.set_num_threads(threads)
  try:
    torch.set_num_interop_threads(1)
  except RuntimeError:  # already set in this process
    pass


def _declare_torchvision_ops() -> None:
  global _LIB
  import torch
  if _LIB is not None:
    return
  import glob
  import importlib.util
  spec = importlib.util.find_spec("torchvision")
  if spec is None or not spec.submodule_search_locations:
    return  # no torchvision: learn2learn's import will say so
  libs = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C*.so"))
  try:
    if libs:
      torch.ops.load_library(libs[0])  # torchvision loads it again: a no-op
      return
  except (OSError, RuntimeError):
    pass  # built against another torch (e.g. CUDA): declare the schemas
  lib = torch.library.Library("torchvision", "DEF")
  lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
  lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
  _LIB = lib


def import_peer(name: str):
  """Imports a peer's module (``learn2learn``, ``higher``, ``torchopt``, ``torch.func``)."""
  import torch
  if name == "learn2learn":
    _declare_torchvision_ops()
    import warnings
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return importlib.import_module("learn2learn")
  if name == "torch.func":
    return torch.func
  return importlib.import_module(name)


_DISTS = {"torch": "torch", "torchvision": "torchvision", "learn2learn": "learn2learn",
          "higher": "higher", "torchopt": "torchopt"}


def version(dist: str) -> Optional[str]:
  try:
    return md.version(dist)
  except md.PackageNotFoundError:
    return None


def peer_versions() -> dict[str, Optional[str]]:
  """Installed versions of torch and the peers (None: not installed), without importing them."""
  return {k: version(v) for k, v in _DISTS.items()}


def peer_available(name: str) -> tuple[bool, str]:
  """Whether a peer imports here; the reason when it does not."""
  try:
    import_peer(name)
    if torch_device() == "cuda":
      import torch
      if not torch.cuda.is_available():
        return False, (f"BENCH_TORCH_DEVICE=cuda but torch {torch.__version__} sees no CUDA"
                       " device")
    return True, ""
  except Exception as e:  # noqa: BLE001 - any import failure is a report row
    return False, f"{type(e).__name__}: {e}".splitlines()[0][:200]
