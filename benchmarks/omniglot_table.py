"""The Omniglot few-shot table: jmeta's learners beside their papers' numbers.

Usage::

  python benchmarks/omniglot_table.py [--budget 60] [--data-dir ../shared/data/omniglot]
                                      [--tfds-dir /tmp/jmeta_omniglot] [--only maml,protonet]

Every cell is one ``jmeta train --dataset omniglot`` run in a subprocess with a
wall-clock budget of meta-training (``--time-budget``, counted from the end of
the first compiled block, whose time -- mostly compilation -- is recorded
apart), then a meta-test on 600 episodes of the test classes (Vinyals split,
rotations as classes) with a 95% confidence interval. Runs are written to
``benchmarks/results/omniglot_runs/<algo>_<ways>w<shots>s/`` as they finish and
skipped when already there, so the script is resumable; after each run the
table is rewritten to ``benchmarks/results/omniglot_table.{json,md}``.

The papers trained for tens of thousands of meta-steps on a GPU; a CPU budget of
a minute or two stops far short of that, so the gap to the paper column is the
budget, not a claim about the method. The meta-steps done and the training time
sit beside every accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUNS = RESULTS / "omniglot_runs"
SETTINGS = ((5, 1), (20, 1), (5, 5), (20, 5))  # run order: the 1-shot cells first
ALGOS = ("maml", "fomaml", "protonet", "matching", "r2d2", "anil")
NAMES = {"maml": "MAML", "fomaml": "FOMAML", "protonet": "ProtoNets", "matching": "Matching Nets",
         "r2d2": "R2-D2", "anil": "ANIL"}

# Papers' Omniglot accuracies (%) for 5-way 1-shot, 5-way 5-shot, 20-way 1-shot, 20-way 5-shot.
PAPER = {
    "maml": ((98.7, 99.9, 95.8, 98.9), "Finn et al., ICML 2017, Table 1"),
    "fomaml": ((98.3, 99.2, 89.4, 97.9), "Finn et al., ICML 2017, Table 1"),
    "protonet": ((98.8, 99.7, 96.0, 98.9), "Snell et al., NeurIPS 2017, Table 1"),
    "matching": ((98.1, 98.9, 93.8, 98.5), "Vinyals et al., NeurIPS 2016, Table 1"),
    # Recalled, not checked against the PDF on this machine (no network): verify before quoting.
    "r2d2": ((98.6, 99.7, 94.7, 98.9),
             "Bertinetto et al., ICLR 2019, Table 1 (recalled, unverified here)"),
    "anil": ((None, None, 96.2, 98.0),
             "Raghu et al., ICLR 2020, Table 2: 20-way only, 5-way not reported"
             " (recalled, unverified here)"),
}
PAPER_INDEX = {(5, 1): 0, (5, 5): 1, (20, 1): 2, (20, 5): 3}


def run_args(algo: str, ways: int, shots: int, args: argparse.Namespace, out: pathlib.Path):
  """The ``jmeta train`` arguments of one cell."""
  argv = ["train", "--dataset", "omniglot", "--data-dir", args.data_dir, "--tfds-dir",
          args.tfds_dir, "--algo", algo, "--ways", str(ways), "--shots", str(shots),
          "--queries", str(args.queries if ways == 5 else args.queries_20way),
          "--meta-batch", str(args.meta_batch), "--iterations", "1000000",
          "--time-budget", str(args.budget), "--log-every", str(args.log_every),
          "--val-episodes", "0", "--eval-episodes", str(args.eval_episodes),
          "--seed", str(args.seed), "--out", str(out), "--no-progress"]
  if algo in ("maml", "fomaml", "anil") and args.task_map != "vmap":
    argv += ["--task-map", args.task_map]
  return argv


def cell(out: pathlib.Path) -> dict | None:
  path = out / "results.json"
  if not path.exists():
    return None
  r = json.loads(path.read_text())
  t = r["timing"]
  return {"accuracy": 100 * r["accuracy"], "ci95": 100 * r["ci95"], "meta_steps": r["meta_steps"],
          "train_s": t["train_s"], "first_block_s": t["first_block_s"], "eval_s": t["eval_s"],
          "inner_steps": r["config"]["inner_steps"], "inner_lr": r["config"]["inner_lr"],
          "meta_batch": r["config"]["meta_batch"], "queries": r["config"]["queries"]}


def write_table(args: argparse.Namespace) -> None:
  rows = []
  for algo in ALGOS:
    for ways, shots in sorted(SETTINGS):
      paper = PAPER[algo][0][PAPER_INDEX[(ways, shots)]]
      rows.append({"algo": algo, "ways": ways, "shots": shots, "paper": paper,
                   "paper_source": PAPER[algo][1],
                   "jmeta": cell(RUNS / f"{algo}_{ways}w{shots}s")})
  argv = [a for a in sys.argv[1:] if a != "--table-only"]
  meta = {"command": "python benchmarks/omniglot_table.py " + " ".join(argv),
          "budget_s": args.budget, "split": "vinyals (1100/100/423 characters) x 4 rotations",
          "eval_episodes": args.eval_episodes, "meta_batch": args.meta_batch,
          "queries": {"5-way": args.queries, "20-way": args.queries_20way},
          "validation": "none (final meta-parameters; budgets too short to select)",
          "cpu_cores": os.cpu_count()}
  (RESULTS / "omniglot_table.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
  lines = [
      "# Omniglot few-shot classification (jmeta, CPU, time-budgeted)", "",
      f"Command: `{meta['command']}`", "",
      f"Each jmeta cell: meta-training for a {args.budget:g} s wall-clock budget on a shared"
      " 2-core CPU (after the first compiled block), then 600 test episodes (95% CI)."
      " Papers trained for 10^4-10^5 meta-steps on GPUs: the gap is the budget.",
      "Other jobs may have shared the CPU during a cell (the runs do not record the load):"
      " meta-steps per cell are not speed figures.",
      "Settings: meta-batch {}, {} queries per class (5-way) / {} (20-way), Vinyals split with"
      " rotations, no validation (final meta-parameters), paper inner-loop settings"
      " (MAML/FOMAML/ANIL: 1 step of 0.4 at 5-way, 5 steps of 0.1 at 20-way); \"not run\": the"
      " time ran out before the cell.".format(args.meta_batch, args.queries, args.queries_20way),
      "",
      "| algorithm | setting | paper | jmeta (95% CI) | meta-steps | train s (first block s) |",
      "|---|---|---|---|---|---|"]
  for row in rows:
    j = row["jmeta"]
    paper = "not reported" if row["paper"] is None else f"{row['paper']:.1f}"
    res = ("not run" if j is None else f"{j['accuracy']:.1f} +/- {j['ci95']:.1f}")
    steps = "" if j is None else str(j["meta_steps"])
    times = "" if j is None else f"{j['train_s']:.0f} ({j['first_block_s']:.0f})"
    lines.append(f"| {NAMES[row['algo']]} | {row['ways']}-way {row['shots']}-shot | {paper} |"
                 f" {res} | {steps} | {times} |")
  lines += ["", "Paper sources: " + "; ".join(f"{NAMES[a]}: {PAPER[a][1]}" for a in ALGOS) + "."]
  (RESULTS / "omniglot_table.md").write_text("\n".join(lines) + "\n")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=os.environ.get(
      "JMETA_OMNIGLOT_DIR", str(REPO.parent / "shared" / "data" / "omniglot")))
  parser.add_argument("--tfds-dir", default="/tmp/jmeta_omniglot")
  parser.add_argument("--budget", type=float, default=45.0, help="meta-training seconds per cell")
  parser.add_argument("--meta-batch", type=int, default=4)
  parser.add_argument("--queries", type=int, default=5, help="queries per class, 5-way")
  parser.add_argument("--queries-20way", type=int, default=5, help="queries per class, 20-way")
  parser.add_argument("--log-every", type=int, default=10)
  parser.add_argument("--eval-episodes", type=int, default=600)
  parser.add_argument("--task-map", default="vmap")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--only", default=None, help="comma-separated algorithms")
  parser.add_argument("--table-only", action="store_true",
                      help="rewrite the table from the finished runs and exit")
  args = parser.parse_args()
  RUNS.mkdir(parents=True, exist_ok=True)
  if args.table_only:
    write_table(args)
    return 0
  algos = ALGOS if args.only is None else tuple(args.only.split(","))
  for ways, shots in SETTINGS:
    for algo in algos:
      out = RUNS / f"{algo}_{ways}w{shots}s"
      if (out / "results.json").exists():
        continue
      argv = run_args(algo, ways, shots, args, out)
      t0 = time.time()
      print(f"[{time.strftime('%H:%M:%S')}] {algo} {ways}-way {shots}-shot ...", flush=True)
      code = subprocess.call([sys.executable, "-m", "jmeta.cli", *argv], cwd=REPO)
      print(f"  exit {code} after {time.time() - t0:.0f} s", flush=True)
      write_table(args)
  write_table(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
