"""Writing a run: ``results.json``, ``report.md``, PNG plots, ``latest_<suite>.md``.

A run is a dict with the fields below (``REQUIRED``); ``sections`` is a list
of ``{"title", "text"?, "table"?: {"headers", "rows"}, "figure"?}``. The
markdown is rendered only from what the run holds: nothing is filled in from an
earlier run.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from typing import Any, Optional, Sequence

REQUIRED = ("suite", "started", "finished", "command", "quick", "machine",
            "versions", "configs", "sections", "targets", "data")

RESULTS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def timestamp() -> str:
  return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def default_out_dir(suite: str) -> str:
  return os.path.join(RESULTS_ROOT, f"{suite}-{timestamp()}")


def fmt(x: Any, digits: int = 3) -> str:
  """A number to a short string; None and non-finite as '-'/'inf'."""
  if x is None:
    return "-"
  if isinstance(x, bool):
    return "yes" if x else "no"
  if isinstance(x, int):
    return str(x)
  if isinstance(x, float):
    if math.isnan(x):
      return "nan"
    if math.isinf(x):
      return "inf"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
      return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"
  return str(x)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  esc = lambda c: fmt(c).replace("|", "\\|").replace("\n", " ")
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def render_markdown(run: dict, image_prefix: str = "") -> str:
  """The report of a run; figure links are prefixed with ``image_prefix``."""
  m, v = run["machine"], run["versions"]
  out = [f"# jmeta benchmarks: `{run['suite']}`", ""]
  out.append(f"Command: `{run['command']}`{' (quick settings)' if run['quick'] else ''}  ")
  out.append(f"Run: {run['started']} to {run['finished']} (UTC)  ")
  out.append(f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores, "
             f"{m.get('mem_total_gib')} GiB, jax backend {m.get('jax_backend', '-')}, "
             f"torch threads {m.get('torch_threads')}, load average at start/end "
             f"{m.get('load_average_start', '-')}/{m.get('load_average', '-')}  ")
  out.append("Versions: " + ", ".join(f"{k} {val if val else 'not installed'}"
                                       for k, val in v.items()))
  out.append("")
  if run["targets"]:
    out.append("## Targets")
    out.append(md_table(["target", "goal", "measured", "met", "by"],
                        [[t["name"], t["goal"], t.get("measured_text", fmt(t.get("measured"))),
                          "n/a" if t.get("met") is None else ("MET" if t["met"] else "MISSED"),
                          t.get("by", "-")] for t in run["targets"]]))
    out.append("")
  for sec in run["sections"]:
    out.append(f"## {sec['title']}")
    if sec.get("text"):
      out.append(sec["text"])
    if sec.get("table"):
      out.append("")
      out.append(md_table(sec["table"]["headers"], sec["table"]["rows"]))
    if sec.get("figure"):
      out.append("")
      out.append(f"![{sec['title']}]({image_prefix}{sec['figure']})")
    out.append("")
  return "\n".join(out).rstrip() + "\n"


def write_run(run: dict, out_dir: str, latest_dir: Optional[str] = None) -> dict[str, str]:
  """Writes ``results.json`` and ``report.md`` into ``out_dir`` and
  ``latest_<suite>.md`` into ``latest_dir`` (default: ``out_dir``'s parent).

  Returns:
    The paths written.
  """
  missing = [k for k in REQUIRED if k not in run]
  if missing:
    raise ValueError(f"run is missing fields {missing}")
  os.makedirs(out_dir, exist_ok=True)
  paths = {"json": os.path.join(out_dir, "results.json"),
           "markdown": os.path.join(out_dir, "report.md")}
  with open(paths["json"], "w") as f:
    json.dump(run, f, indent=1, default=_json_default, allow_nan=True)
  with open(paths["markdown"], "w") as f:
    f.write(render_markdown(run))
  latest_dir = latest_dir or os.path.dirname(os.path.abspath(out_dir))
  rel = os.path.relpath(os.path.abspath(out_dir), os.path.abspath(latest_dir))
  paths["latest"] = os.path.join(latest_dir, f"latest_{run['suite']}.md")
  with open(paths["latest"], "w") as f:
    f.write(render_markdown(run, image_prefix=rel + "/"))
  return paths


def _json_default(o):
  try:
    import numpy as np
    if isinstance(o, np.generic):
      return o.item()
    if isinstance(o, np.ndarray):
      return o.tolist()
  except ImportError:
    pass
  return str(o)


# --------------------------------------------------------------------------
# Plots (matplotlib, Agg). Each returns the file name written, or None.

def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def bar_plot(path: str, labels: Sequence[str], values: Sequence[Optional[float]],
             title: str, ylabel: str, log: bool = True,
             errors: Optional[Sequence[tuple[float, float]]] = None) -> Optional[str]:
  vals = [v if v is not None and math.isfinite(v) and v > 0 else 0.0 for v in values]
  if not any(vals):
    return None
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 3.8))
  yerr = None
  if errors:
    yerr = [[max(v - lo, 0) for v, (lo, _) in zip(vals, errors)],
            [max(hi - v, 0) for v, (_, hi) in zip(vals, errors)]]
  ax.bar(range(len(vals)), vals, yerr=yerr, color=["#1f77b4" if l.startswith("jmeta") else "#999999"
                                                   for l in labels], capsize=3)
  ax.set_xticks(range(len(vals)), labels, rotation=20, ha="right")
  if log:
    ax.set_yscale("log")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  for i, v in enumerate(vals):
    if v:
      ax.text(i, v, fmt(v), ha="center", va="bottom", fontsize=8)
    else:
      ax.text(i, ax.get_ylim()[0], "n/a", ha="center", va="bottom", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return os.path.basename(path)


def line_plot(path: str, series: dict[str, tuple[Sequence[float], Sequence[Optional[float]]]],
              title: str, xlabel: str, ylabel: str, logx: bool = True,
              logy: bool = True) -> Optional[str]:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 3.8))
  drawn = False
  for name, (xs, ys) in series.items():
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and y > 0]
    if pts:
      ax.plot(*zip(*pts), marker="o", label=name, lw=2.5 if name.startswith("jmeta") else 1.2)
      drawn = True
  if not drawn:
    plt.close(fig)
    return None
  if logx:
    ax.set_xscale("log", base=2)
  if logy:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return os.path.basename(path)
