"""The command line: ``python -m benchmarks {list,run,compare} ...``."""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import glob
import os
import sys
import time

from benchmarks import _harness, _machine, _report
from benchmarks._suites import SUITES, Ctx


def _now() -> str:
  return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _log(msg: str) -> None:
  print(msg, flush=True)


def run_suite(name: str, out_dir: str, quick: bool, command: str,
              budget_s: float | None = None, meta_batch: int | None = None,
              configs: tuple[str, ...] | None = None, speed_only: bool = False,
              rounds: int | None = None) -> dict:
  """Runs one suite and writes its results folder and ``latest_<name>.md``."""
  started = _now()
  load0 = _machine.load_average()
  t = time.perf_counter()
  ctx = Ctx(quick, out_dir, _log, budget_s, meta_batch=meta_batch, configs=configs,
            speed_only=speed_only, rounds=rounds)
  _log(f"# suite {name} -> {out_dir}")
  body = SUITES[name](ctx)
  try:  # the raw measurements first, so a report bug cannot lose a long run
    import json
    with open(os.path.join(out_dir, "raw.json"), "w") as f:
      json.dump(body, f, default=str)
  except (OSError, TypeError, ValueError) as e:
    _log(f"could not save raw.json: {e}")
  machine = _machine.machine(_harness.TORCH_THREADS)
  peak = body["data"].get("peak") if isinstance(body.get("data"), dict) else None
  machine["jax_backend"] = _jax_backend()
  machine["load_average_start"] = load0
  if peak and peak.get("ok"):
    machine["float32_matmul_peak_gflops"] = peak["flops_per_s"] / 1e9
  run = {"suite": name, "started": started, "finished": _now(), "duration_s": time.perf_counter() - t,
         "command": command, "quick": quick, "machine": machine,
         "versions": _machine.versions(), "peers": ctx._peers or {}, **body}
  paths = _report.write_run(run, out_dir)
  _log(f"wrote {paths['json']}, {paths['markdown']}, {paths['latest']}")
  return run


# README figures of the experiments that stay at benchmarks/ (other sessions own
# their content) and do not declare README_FIGURE themselves.
_FIGURES_ELSEWHERE = {
    "benchmarks.meta_rl": "README 'Meta-reinforcement learning': the 2D navigation comparison",
}


def readme_figure(path: str) -> str | None:
  """The ``README_FIGURE`` string a module declares, read without importing it."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  for node in tree.body:
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "README_FIGURE"):
      value = ast.literal_eval(node.value)
      return value if isinstance(value, str) else None
  return None


def experiments() -> dict[str, str | None]:
  """Every experiment module (``python -m NAME``) and the README figure it produces.

  The modules of ``benchmarks/experiments/``, the public top-level modules of
  ``benchmarks/`` that are not the harness, and ``benchmarks.gpu.run``.
  """
  here = os.path.dirname(os.path.abspath(__file__))
  paths = sorted(glob.glob(os.path.join(here, "experiments", "*.py")))
  paths += sorted(glob.glob(os.path.join(here, "*.py"))) + [os.path.join(here, "gpu", "run.py")]
  out = {}
  for path in paths:
    rel = os.path.relpath(path, os.path.dirname(here))[:-3]
    if os.path.basename(rel).startswith("_"):
      continue
    name = rel.replace(os.sep, ".")
    out[name] = readme_figure(path) or _FIGURES_ELSEWHERE.get(name)
  return out


def list_all() -> str:
  """The text of ``python -m benchmarks list``: suites, experiments, their README figures."""
  from benchmarks._suites import SUITE_FIGURES, SUITES
  lines = ["Suites (python -m benchmarks run SUITE [--quick]):"]
  lines += [f"  {name:<10} {SUITE_FIGURES[name]}" for name in SUITES]
  lines += ["", "Experiments (python -m MODULE --help):"]
  for name, fig in experiments().items():
    lines.append(f"  {name:<44} {fig or 'README_FIGURE missing'}")
  return "\n".join(lines)


def _jax_backend() -> str:
  try:
    import jax
    devs = jax.devices()
    return f"{jax.default_backend()} ({len(devs)} device(s): {devs[0].device_kind})"
  except Exception as e:  # noqa: BLE001
    return f"unavailable: {e}"


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser(prog="python -m benchmarks",
                              description="jmeta against learn2learn, higher, TorchOpt and torch.func.")
  sub = p.add_subparsers(dest="cmd", required=True)
  sub.add_parser("list", help="every suite and experiment, and the README figure it produces")
  c = sub.add_parser("compare", help="runs of one suite side by side (e.g. jax 0.10 against 0.12)")
  c.add_argument("runs", nargs="+", help="results folders (or results.json files); the first is the"
                 " baseline")
  c.add_argument("--out", default=None, help="also write the markdown here")
  r = sub.add_parser("run", help="run a suite")
  r.add_argument("suite", choices=sorted(SUITES) + ["all"])
  r.add_argument("--out", default=None, help="results folder (default benchmarks/results/<suite>-<timestamp>/)")
  r.add_argument("--quick", action="store_true", help="small settings (minutes, not tens of minutes)")
  r.add_argument("--budget-min", type=float, default=None,
                 help="wall-clock budget per suite in minutes; jobs past it are reported as skipped")
  r.add_argument("--meta-batch", type=int, default=None,
                 help="Omniglot meta-batch of the speed suite (default 16; 4 with --quick) and"
                 " of the conv suite (default 8; 2 with --quick)")
  r.add_argument("--configs", default=None,
                 help="speed and conv suites: comma-separated config names or prefixes to run,"
                 " in this order (e.g. omniglot,sinusoid-1step or conv-maml-5w; default all)")
  r.add_argument("--rounds", type=int, default=None,
                 help="speed and conv suites: interleaved timed rounds (default 7; 3 with --quick)")
  r.add_argument("--speed-only", action="store_true",
                 help="speed and conv suites: gradient checks and interleaved timings only (no fresh-process"
                 " import/first-call/peak-RSS jobs, no profile)")
  r.add_argument("--torch-device", choices=("cpu", "cuda"), default=None,
                 help="where the PyTorch peers run (default cpu; sets BENCH_TORCH_DEVICE)")
  args = p.parse_args(argv)
  if args.cmd == "list":
    print(list_all())
    return 0
  if args.cmd == "compare":
    from benchmarks import _compare
    try:
      print(_compare.main(args.runs, args.out), end="")
    except (OSError, ValueError) as e:
      p.error(str(e))
    return 0
  if args.meta_batch is not None and args.meta_batch < 1:
    p.error(f"--meta-batch: expected a positive integer, got {args.meta_batch}")
  if args.rounds is not None and args.rounds < 3:
    p.error(f"--rounds: expected an integer >= 3, got {args.rounds}")
  if args.torch_device:
    os.environ["BENCH_TORCH_DEVICE"] = args.torch_device  # inherited by every worker
  configs = tuple(c for c in args.configs.split(",") if c) if args.configs else None
  if configs:
    from benchmarks._suites import SUITE_CONFIGS
    if args.suite not in SUITE_CONFIGS:
      p.error(f"--configs: only the {sorted(SUITE_CONFIGS)} suites choose configs")
    try:
      SUITE_CONFIGS[args.suite](args.quick, args.meta_batch, configs)
    except ValueError as e:
      p.error(str(e))
  command = "python -m benchmarks " + " ".join(argv)
  suites = list(SUITES) if args.suite == "all" else [args.suite]
  for name in suites:
    if args.out and len(suites) > 1:
      out = os.path.join(args.out, name)
    else:
      out = args.out or _report.default_out_dir(name)
    run_suite(name, out, args.quick, command,
              None if args.budget_min is None else 60 * args.budget_min,
              meta_batch=args.meta_batch, configs=configs, speed_only=args.speed_only,
              rounds=args.rounds)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
