"""The command line: ``python -m benchmarks run SUITE [--out DIR] [--quick]``."""

from __future__ import annotations

import argparse
import datetime as _dt
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
              configs: tuple[str, ...] | None = None, speed_only: bool = False) -> dict:
  """Runs one suite and writes its results folder and ``latest_<name>.md``."""
  started = _now()
  load0 = _machine.load_average()
  t = time.perf_counter()
  ctx = Ctx(quick, out_dir, _log, budget_s, meta_batch=meta_batch, configs=configs,
            speed_only=speed_only)
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
  r.add_argument("--speed-only", action="store_true",
                 help="speed and conv suites: gradient checks and interleaved timings only (no fresh-process"
                 " import/first-call/peak-RSS jobs, no profile)")
  r.add_argument("--torch-device", choices=("cpu", "cuda"), default=None,
                 help="where the PyTorch peers run (default cpu; sets BENCH_TORCH_DEVICE)")
  args = p.parse_args(argv)
  if args.meta_batch is not None and args.meta_batch < 1:
    p.error(f"--meta-batch: expected a positive integer, got {args.meta_batch}")
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
              meta_batch=args.meta_batch, configs=configs, speed_only=args.speed_only)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
