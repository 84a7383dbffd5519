"""The small statistics of the harness: medians, spreads, paired ratios, the gradient gate.

Pure Python and numpy, so ``tests/test_harness.py`` checks them on known numbers.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

# Float64 meta-gradients of the same computation agree to ~1e-12; anything
# above this is a different computation, not rounding. Float32 (used only when
# one side cannot run float64) agrees to ~1e-5.
GRAD_RTOL = 1e-6
GRAD_RTOL_F32 = 1e-3


def median(xs: Sequence[float]) -> float:
  """The median (mean of the two middle values for an even count)."""
  if len(xs) == 0:
    raise ValueError("median of an empty sequence")
  return float(np.median(np.asarray(xs, dtype=np.float64)))


def spread(xs: Sequence[float]) -> dict[str, float]:
  """Min, max, and the interquartile range (numpy's linear quantiles)."""
  a = np.asarray(xs, dtype=np.float64)
  q1, q3 = np.quantile(a, [0.25, 0.75])
  return {"min": float(a.min()), "max": float(a.max()),
          "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1)}


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
  """Round-by-round ratios ``a[i] / b[i]`` of an A/B/A/B series."""
  if len(a) != len(b):
    raise ValueError(f"paired series differ in length: {len(a)} vs {len(b)}")
  return [x / y for x, y in zip(a, b)]


def ratio_summary(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
  """Median and spread of the paired ratios ``a/b`` (e.g. jmeta/peer steps/s)."""
  r = paired_ratios(a, b)
  return {"median": median(r), **spread(r), "n": len(r)}


def rate_summary(rates: Sequence[float]) -> dict[str, float]:
  """Median and spread of a series of rates (steps/s)."""
  return {"median": median(rates), **spread(rates), "n": len(rates)}


def max_rel_diff(grads: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> float:
  """Largest over parameters of ``max|g - ref| / scale`` (inf on a mismatch).

  ``scale`` is the leaf's ``max|ref|``, floored at 1e-3 of the largest
  ``max|ref|`` over all leaves: a leaf whose exact gradient is zero (a conv
  bias right before batch normalisation) then compares rounding noise against
  the gradient's overall size, not against zero.
  """
  if set(grads) != set(ref):
    return math.inf
  arrays = {}
  for k, r in ref.items():
    g = np.asarray(grads[k], dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if g.shape != r.shape or not (np.all(np.isfinite(g)) and np.all(np.isfinite(r))):
      return math.inf
    arrays[k] = (g, r)
  top = max((float(np.max(np.abs(r))) for _, r in arrays.values() if r.size), default=0.0)
  worst = 0.0
  for g, r in arrays.values():
    if not r.size:
      continue
    scale = max(float(np.max(np.abs(r))), 1e-3 * top, 1e-30)
    worst = max(worst, float(np.max(np.abs(g - r))) / scale)
  return worst


def gradient_gate(rel_diff: Optional[float], rtol: float = GRAD_RTOL) -> tuple[bool, str]:
  """Whether a speed ratio may be printed for an implementation.

  Args:
    rel_diff: its max relative meta-gradient difference from jmeta, or None if
      the check could not run.
    rtol: the tolerance.

  Returns:
    ``(ok, reason)``; ``reason`` says why not when ``ok`` is False.
  """
  if rel_diff is None:
    return False, "gradient check did not run"
  if not math.isfinite(rel_diff):
    return False, "meta-gradient is non-finite or shaped differently"
  if rel_diff > rtol:
    return False, f"meta-gradient disagrees with jmeta (max rel diff {rel_diff:.2e} > {rtol:.0e})"
  return True, f"meta-gradient agrees (max rel diff {rel_diff:.1e})"


def target_verdict(measured: Optional[float], target: float) -> dict[str, object]:
  """Whether ``measured >= target`` and by what factor (``measured/target``)."""
  if measured is None or not math.isfinite(measured):
    return {"met": None, "target": target, "measured": measured, "factor": None}
  return {"met": bool(measured >= target), "target": target,
          "measured": measured, "factor": measured / target}
