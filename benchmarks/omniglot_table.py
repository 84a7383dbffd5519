"""The Omniglot few-shot table: each learner's own recipe, validation-selected, beside its paper.

Usage::

  python -m benchmarks.omniglot_table [--cells protonet:5:1,r2d2:5:1,...] [--budget S]
      [--checkpoint-every N] [--data-dir ../shared/data/omniglot] [--tfds-dir DIR]
  python -m benchmarks.omniglot_table --table-only      # rebuild table, curves, README block

Every cell is one ``jmeta train --dataset omniglot --algo A --ways W --shots S``
run with **the registry's defaults for that learner and setting** -- what a user
gets from the same command: each learner's Omniglot recipe from its paper
(ProtoNets and R2-D2 on 60-way training episodes with Adam halved every 2,000;
MAML/FOMAML/ANIL with Finn et al.'s inner loop and meta-batch 32, ...), the
default CPU time budget, validation every ``val_every`` meta-steps on the
validation characters with the best meta-parameters kept, and 600 test
episodes with a 95% CI. ``--budget`` overrides the training time budget for
every cell (seconds of training, summed over resumed runs).

Runs live in ``benchmarks/results/omniglot_runs/<algo>_<ways>w<shots>s/``
(their ``checkpoints/`` and ``model/`` are not committed). A cell with a
``results.json`` is finished and skipped; one with checkpoints but no results
(interrupted, or killed on purpose) is continued with ``--resume``, so a cell's
budget is not bounded by one process or one sitting. Each run's
``cell.json`` records when it ran and the machine's load average while it did
(sampled every 30 s): meta-steps per cell depend on what else shared the CPU.

After every cell (and with ``--table-only``) it writes
``benchmarks/results/omniglot_table.{json,md}``, the learning curves
(validation accuracy on fixed validation episodes against meta-steps, paper
figure as a dashed line) to ``benchmarks/results/omniglot_curves.png``, and the
README block between ``<!-- omniglot-table:start -->`` and
``<!-- omniglot-table:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUNS = RESULTS / "omniglot_runs"
README = REPO / "README.md"
MARKERS = ("<!-- omniglot-table:start -->", "<!-- omniglot-table:end -->")
README_FIGURE = "README 'Omniglot' table and benchmarks/results/omniglot_curves.png"

SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
ALGOS = ("protonet", "r2d2", "matching", "maml", "fomaml", "anil")
NAMES = {"maml": "MAML", "fomaml": "FOMAML", "protonet": "ProtoNets", "matching": "Matching Nets",
         "r2d2": "R2-D2", "anil": "ANIL"}
# The order cells run in by default: the learners that can reach their papers on a CPU first.
DEFAULT_CELLS = tuple(f"{a}:{w}:{s}" for a in ("protonet", "r2d2") for w, s in SETTINGS) + tuple(
    f"{a}:{w}:{s}" for a in ("matching", "maml", "fomaml", "anil") for w, s in SETTINGS)

# Papers' Omniglot test accuracies (%): 5-way 1-shot, 5-way 5-shot, 20-way 1-shot, 20-way 5-shot.
PAPER = {
    "maml": ((98.7, 99.9, 95.8, 98.9), "Finn et al., ICML 2017, Table 1"),
    "fomaml": ((98.3, 99.2, 89.4, 97.9), "Finn et al., ICML 2017, Table 1"),
    "protonet": ((98.8, 99.7, 96.0, 98.9), "Snell et al., NeurIPS 2017, Table 1"),
    "matching": ((98.1, 98.9, 93.8, 98.5), "Vinyals et al., NeurIPS 2016, Table 1"),
    # Not checked against the paper on this machine (no network access to the PDF).
    "r2d2": ((98.6, 99.7, 94.7, 98.9),
             "Bertinetto et al., ICLR 2019, Table 1 (recalled, not checked here)"),
    "anil": ((None, None, 96.2, 98.0),
             "Raghu et al., ICLR 2020: 20-way only (MAML 93.7 and 96.4 in the same table;"
             " recalled, not checked here)"),
}
PAPER_INDEX = {(5, 1): 0, (5, 5): 1, (20, 1): 2, (20, 5): 3}


def parse_cells(text: str) -> list[tuple[str, int, int]]:
  """``"protonet:5:1,maml:20:5"`` -> ``[("protonet", 5, 1), ("maml", 20, 5)]``."""
  cells = []
  for item in text.split(","):
    parts = item.strip().split(":")
    if len(parts) != 3 or parts[0] not in ALGOS or not (parts[1].isdigit() and parts[2].isdigit()):
      raise SystemExit(f"--cells: expected ALGO:WAYS:SHOTS with ALGO in {', '.join(ALGOS)},"
                       f" got {item!r}")
    ways, shots = int(parts[1]), int(parts[2])
    if (ways, shots) not in PAPER_INDEX:
      raise SystemExit(f"--cells: {item!r}: the table has 5/20-way 1/5-shot settings only")
    cells.append((parts[0], ways, shots))
  return cells


def run_dir(algo: str, ways: int, shots: int) -> pathlib.Path:
  return RUNS / f"{algo}_{ways}w{shots}s"


def train_argv(algo: str, ways: int, shots: int, args: argparse.Namespace,
               out: pathlib.Path) -> list[str]:
  """The ``jmeta train`` arguments of one cell: the registry's defaults plus bookkeeping."""
  argv = ["train", "--dataset", "omniglot", "--data-dir", args.data_dir, "--algo", algo,
          "--ways", str(ways), "--shots", str(shots), "--out", str(out), "--no-progress",
          "--seed", str(args.seed), "--checkpoint-every", str(args.checkpoint_every)]
  if args.tfds_dir:
    argv += ["--tfds-dir", args.tfds_dir]
  if args.budget is not None:
    argv += ["--time-budget", str(args.budget)]
  if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
    argv.append("--resume")
  return argv


class LoadSampler:
  """Samples the 1-minute load average every ``every`` seconds in a thread."""

  def __init__(self, every: float = 30.0):
    self.samples: list[float] = [os.getloadavg()[0]]
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

  def _run(self, every: float) -> None:
    while not self._stop.wait(every):
      self.samples.append(os.getloadavg()[0])

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.samples.append(os.getloadavg()[0])


def run_cell(algo: str, ways: int, shots: int, args: argparse.Namespace) -> int:
  out = run_dir(algo, ways, shots)
  argv = train_argv(algo, ways, shots, args, out)
  started = time.strftime("%Y-%m-%dT%H:%M:%S")
  print(f"[{started}] {algo} {ways}-way {shots}-shot: jmeta {' '.join(argv)}", flush=True)
  t0 = time.time()
  with LoadSampler() as load:
    code = subprocess.call([sys.executable, "-m", "jmeta.cli", *argv], cwd=REPO)
  sessions = []
  meta_path = out / "cell.json"
  if meta_path.exists():
    sessions = json.loads(meta_path.read_text())["sessions"]
  sessions.append({"started": started, "wall_s": round(time.time() - t0, 1), "exit": code,
                   "resumed": "--resume" in argv, "cpu_count": os.cpu_count(),
                   "load_mean": round(sum(load.samples) / len(load.samples), 2),
                   "load_max": round(max(load.samples), 2)})
  out.mkdir(parents=True, exist_ok=True)
  meta_path.write_text(json.dumps({"sessions": sessions}, indent=2))
  print(f"  exit {code} after {time.time() - t0:.0f} s (mean load {sessions[-1]['load_mean']})",
        flush=True)
  return code


def cell_row(algo: str, ways: int, shots: int) -> dict:
  """One table row from a run folder (``jmeta`` is None when the cell has not finished)."""
  out = run_dir(algo, ways, shots)
  row = {"algo": algo, "ways": ways, "shots": shots,
         "paper": PAPER[algo][0][PAPER_INDEX[(ways, shots)]], "paper_source": PAPER[algo][1],
         "jmeta": None, "curve": curve(out)}
  path = out / "results.json"
  if not path.exists():
    return row
  r = json.loads(path.read_text())
  cfg, t = r["config"], r["timing"]
  sessions = (json.loads((out / "cell.json").read_text())["sessions"]
              if (out / "cell.json").exists() else [])
  loads = [s["load_mean"] for s in sessions]
  row["jmeta"] = {
      "accuracy": 100 * r["accuracy"], "ci95": 100 * r["ci95"], "meta_steps": r["meta_steps"],
      "train_s": t["trained_s_total"], "best_step": (r["best_val"] or {}).get("step"),
      "best_val": (r["best_val"] or {}).get("score"),
      "recipe": {k: cfg.get(k) for k in ("meta_batch", "train_ways", "queries", "train_queries",
                                         "inner_steps", "inner_lr", "first_order", "meta_lr",
                                         "lr_halve_every", "time_budget", "val_every",
                                         "val_tasks", "eval_tasks")},
      # over several (resumed) sessions: the highest session mean, the conservative figure
      "load_mean": max(loads) if loads else None, "sessions": len(sessions),
      "jax": r.get("versions", {}).get("jax")}
  return row


def curve(out: pathlib.Path) -> list[tuple[int, float]]:
  """``[(meta_step, validation accuracy %)]`` from a run's ``metrics.jsonl``."""
  path = out / "metrics.jsonl"
  if not path.exists():
    return []
  points = []
  for line in path.read_text().splitlines():
    rec = json.loads(line)
    if "val_query_accuracy" in rec:
      points.append((int(rec["step"]), 100 * float(rec["val_query_accuracy"])))
  return points


def recipe_text(j: dict) -> str:
  r = j["recipe"]
  if r.get("inner_steps"):
    inner = f"{r['inner_steps']} x {r['inner_lr']:g}{' FO' if r.get('first_order') else ''}"
  else:
    inner = f"{r['train_ways']}-way train episodes" if r.get("train_ways") else "-"
  halve = f", lr/2 every {r['lr_halve_every']}" if r.get("lr_halve_every") else ""
  lr = f", meta-lr {r['meta_lr']:g}" if r.get("meta_lr") is not None else ""
  return f"mb {r['meta_batch']}, {inner}{lr}{halve}"


def write_outputs(cells: list[tuple[str, int, int]]) -> str:
  """Writes the table (md, json), the curves and the README block; returns the block."""
  rows = [cell_row(a, w, s) for a in ALGOS for w, s in SETTINGS]
  (RESULTS / "omniglot_table.json").write_text(json.dumps(
      {"command": "python -m benchmarks.omniglot_table", "cells_requested":
       [f"{a}:{w}:{s}" for a, w, s in cells], "rows": rows}, indent=2))
  lines = ["| learner | setting | paper | jmeta (95% CI) | selected at / meta-steps | training"
           " (mean load) | recipe |", "|---|---|---|---|---|---|---|"]
  for row in rows:
    j = row["jmeta"]
    paper = "n/r" if row["paper"] is None else f"{row['paper']:.1f}"
    if "not checked" in row["paper_source"] and row["paper"] is not None:
      paper += "*"
    if j is None:
      progress = f"running or interrupted at step {row['curve'][-1][0]}" if row["curve"] else "not run"
      lines.append(f"| {NAMES[row['algo']]} | {row['ways']}-way {row['shots']}-shot | {paper} |"
                   f" {progress} | | | |")
      continue
    load = "" if j["load_mean"] is None else f" ({j['load_mean']:.1f})"
    lines.append(
        f"| {NAMES[row['algo']]} | {row['ways']}-way {row['shots']}-shot | {paper} |"
        f" {j['accuracy']:.1f} +/- {j['ci95']:.1f} | {j['best_step']} / {j['meta_steps']} |"
        f" {j['train_s'] / 60:.0f} min{load} | {recipe_text(j)} |")
  notes = [
      "", "Each cell: `jmeta train --dataset omniglot --algo A --ways W --shots S` with the registry's"
      " defaults (the learner's paper recipe, the CPU time budget), validation-best meta-parameters,"
      " 600 test episodes of the Vinyals test characters with rotations. \"mean load\": the machine's"
      " mean 1-minute load average during the cell (2 cores: above 2, other jobs shared the CPU)."
      " mb: episodes per meta-step; `n x lr`: inner steps of SGD; * paper number not checked"
      " against the paper here; n/r: not reported. Papers: "
      + "; ".join(f"{NAMES[a]}: {PAPER[a][1]}" for a in ALGOS) + ".",
      "", "Learning curves (validation accuracy against meta-steps, paper as dashed line):"
      " [benchmarks/results/omniglot_curves.png](benchmarks/results/omniglot_curves.png)."]
  block = "\n".join(lines + notes)
  (RESULTS / "omniglot_table.md").write_text(
      "# Omniglot few-shot classification (jmeta, CPU)\n\n"
      "Command: `python -m benchmarks.omniglot_table` (see its docstring)\n\n" + block + "\n")
  plot_curves(rows)
  update_readme(block)
  return block


def plot_curves(rows: list[dict]) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  with_curves = [r for r in rows if r["curve"]]
  if not with_curves:
    return
  settings = sorted({(r["ways"], r["shots"]) for r in with_curves})
  fig, axes = plt.subplots(1, len(settings), figsize=(max(6.0, 4.5 * len(settings)), 3.8),
                           squeeze=False)
  for ax, (ways, shots) in zip(axes[0], settings):
    for i, r in enumerate(x for x in with_curves if (x["ways"], x["shots"]) == (ways, shots)):
      steps, acc = zip(*r["curve"])
      line, = ax.plot(steps, acc, marker=".", label=NAMES[r["algo"]], color=f"C{i}")
      if r["paper"] is not None:
        ax.axhline(r["paper"], ls="--", lw=0.8, color=line.get_color())
    ax.set_title(f"{ways}-way {shots}-shot")
    ax.set_xlabel("meta-steps")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("Omniglot: validation accuracy vs meta-steps (dashed: paper test accuracy)",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(RESULTS / "omniglot_curves.png", dpi=110)
  plt.close(fig)


def update_readme(block: str) -> None:
  text = README.read_text()
  start, end = MARKERS
  if start not in text or end not in text:
    print(f"README has no {start} ... {end} block; not updated", file=sys.stderr)
    return
  head, rest = text.split(start, 1)
  _, tail = rest.split(end, 1)
  README.write_text(f"{head}{start}\n{block}\n{end}{tail}")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=os.environ.get(
      "JMETA_OMNIGLOT_DIR", str(REPO.parent / "shared" / "data" / "omniglot")))
  parser.add_argument("--tfds-dir", default=None,
                      help="prepared-data folder (default: jmeta's cache, $JMETA_CACHE)")
  parser.add_argument("--cells", default=",".join(DEFAULT_CELLS),
                      help="ALGO:WAYS:SHOTS,... in the order to run (default: all, ProtoNets and"
                      " R2-D2 first)")
  parser.add_argument("--budget", type=float, default=None,
                      help="seconds of training per cell (default: the registry's, 900 on a CPU)")
  parser.add_argument("--checkpoint-every", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--table-only", action="store_true",
                      help="rebuild the table, curves and README block from the runs and exit")
  args = parser.parse_args()
  cells = parse_cells(args.cells)
  RUNS.mkdir(parents=True, exist_ok=True)
  if not args.table_only:
    for algo, ways, shots in cells:
      if (run_dir(algo, ways, shots) / "results.json").exists():
        continue
      run_cell(algo, ways, shots, args)
      write_outputs(cells)
  print(write_outputs(cells))
  return 0


if __name__ == "__main__":
  sys.exit(main())
