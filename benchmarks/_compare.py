"""``python -m benchmarks compare RUN RUN [...]``: the same suite's runs side by side.

Each RUN is a results folder (or its ``results.json``) of ``speed`` or ``conv``,
e.g. one run on jax 0.10 and one on jax 0.12, or one before and one after a
change. The table shows every implementation's median meta-steps/s per config
in each run, and each later run's rate over the first's; the header says which
versions and machine load each run had, so a difference is read next to what
changed.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from benchmarks import _report, _stats

VERSION_KEYS = ("jax", "jaxlib", "jmeta", "numpy", "torch")


def load_run(path: str) -> dict[str, Any]:
  """A run's ``results.json`` from its folder or the file itself."""
  if os.path.isdir(path):
    path = os.path.join(path, "results.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no results.json at {path!r}")
  with open(path) as f:
    return json.load(f)


def median_rates(run: dict[str, Any]) -> dict[str, dict[str, float]]:
  """``{config: {implementation: median meta-steps/s}}`` of a speed or conv run."""
  out: dict[str, dict[str, float]] = {}
  for name, d in (run.get("data") or {}).items():
    sp = d.get("speed") if isinstance(d, dict) else None
    if not isinstance(sp, dict) or not sp.get("ok"):
      continue
    out[name] = {impl: _stats.median(r["rates"]) for impl, r in (sp.get("impls") or {}).items()
                 if r.get("rates")}
  return out


def compare(runs: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
  """The markdown comparison of ``runs`` (the first is the baseline).

  Raises:
    ValueError: fewer than two runs, or runs of different suites.
  """
  if len(runs) < 2:
    raise ValueError(f"compare needs at least two runs; got {len(runs)}")
  suites = {r.get("suite") for r in runs}
  if len(suites) != 1:
    raise ValueError(f"runs of different suites cannot be compared: {sorted(map(str, suites))}")
  lines = [f"# jmeta benchmarks: `{runs[0]['suite']}` compared", ""]
  lines.append(_report.md_table(
      ["run", "label", "started (UTC)", "python", "load average start/end"] + list(VERSION_KEYS),
      [[i, lab, r.get("started"), r["machine"].get("python", "-"),
        f"{r['machine'].get('load_average_start', '-')}/{r['machine'].get('load_average', '-')}"]
       + [r.get("versions", {}).get(k) or "-" for k in VERSION_KEYS]
       for i, (r, lab) in enumerate(zip(runs, labels))]))
  rates = [median_rates(r) for r in runs]
  rows = []
  for cfg in rates[0]:
    for impl, base in rates[0][cfg].items():
      row = [cfg, impl, base]
      for other in rates[1:]:
        v = other.get(cfg, {}).get(impl)
        row += [v, None if v is None else v / base]
      rows.append(row)
  headers = ["config", "implementation", "run 0 steps/s"]
  for i in range(1, len(runs)):
    headers += [f"run {i} steps/s", f"run {i} / run 0"]
  lines += ["", "Median meta-steps/s of each run's interleaved rounds; a ratio above 1 is faster than "
            "run 0. Rounds of different runs are not paired, so read small differences against "
            "each run's spread (its report) and load.", "", _report.md_table(headers, rows)]
  return "\n".join(lines) + "\n"


def main(paths: Sequence[str], out: str | None = None) -> str:
  runs = [load_run(p) for p in paths]
  text = compare(runs, [os.path.basename(os.path.normpath(p)) for p in paths])
  if out:
    with open(out, "w") as f:
      f.write(text)
  return text
