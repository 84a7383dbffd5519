"""What machine and which library versions a run measured (no jax/torch import)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from typing import Any, Optional

LIBS = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "torchvision",
        "learn2learn", "higher", "torchopt", "matplotlib")


def _version(dist: str) -> Optional[str]:
  try:
    return md.version(dist)
  except md.PackageNotFoundError:
    return None


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def mem_total_gib() -> Optional[float]:
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemTotal:"):
          return round(int(line.split()[1]) / 1024 ** 2, 1)
  except OSError:
    pass
  return None


def versions() -> dict[str, Optional[str]]:
  """Installed versions (None: not installed), read from package metadata."""
  out = {lib: _version(lib) for lib in LIBS}
  try:
    import jmeta  # noqa: F401 - jmeta's own version string
    out["jmeta"] = getattr(jmeta, "__version__", None)
  except Exception:  # noqa: BLE001
    out["jmeta"] = None
  return out


def machine(torch_threads: int) -> dict[str, Any]:
  """CPU model, core count, memory, OS, Python and the thread settings used."""
  return {
      "cpu_model": cpu_model(),
      "cores": os.cpu_count(),
      "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "mem_total_gib": mem_total_gib(),
      "platform": platform.platform(),
      "python": platform.python_version(),
      "torch_threads": torch_threads,
      "torch_device": os.environ.get("BENCH_TORCH_DEVICE", "cpu"),
      "jax_threads": "XLA CPU default (one intra-op thread per usable core)",
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "load_average": load_average(),
  }


def load_average() -> Optional[list[float]]:
  """1/5/15-minute load averages: other processes compete for the cores."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None
