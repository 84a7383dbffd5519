"""One time-boxed run of jmeta on a GPU: environment, tests, speed against the peers, Omniglot.

``python -m benchmarks.gpu.run --out DIR`` (``bash benchmarks/gpu/run.sh DIR`` installs the
carried wheels first). Steps, each a subprocess with its own time limit so that a slow step
cannot starve the rest, all inside one deadline (``--total``, 525 s):

1. ``env``: Python, the library versions, ``jax.devices()``, torch's CUDA, ``nvidia-smi``.
2. ``tests``: the GPU-relevant tests (the conformance battery and meta-step tests, the conv
   layer, sharding on one device) with pytest's summary.
3. ``speed``: the harness's speed suite (``python -m benchmarks run speed``): Omniglot 5-way
   1-shot MAML at meta-batch 32 and sinusoid MAML, jmeta (``task_map="auto"``) beside the
   PyTorch peers that import, on the same device, gradients checked first.
4. ``maml`` and ``protonet``: ``jmeta train --dataset omniglot`` at the papers' settings
   (second-order MAML 5-way 1-shot, meta-batch 32, 1 inner step of 0.4, Adam 1e-3; ProtoNets
   5-way 1-shot) for a time budget each, then 600 test episodes with 95% CIs. Their budgets
   shrink to what the deadline leaves (recorded in the report).

Writes into ``--out`` (at most 8 files, for the device tool): ``report.md``, ``report.json``,
``pytest.txt``, ``speed.md``, ``speed.json``, ``train.txt`` (both training logs) and
``env.txt``. ``--dry-run`` runs the same steps on any machine with tiny settings and fake
Omniglot archives (``tests/test_gpu_run.py``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from benchmarks import _harness

README_FIGURE = "none yet: the GPU run (benchmarks/gpu/README.md); README says no GPU figures yet"

REPO = _harness.REPO
DEFAULT_DATA = os.path.join(REPO, ".gpu", "omniglot")

# The GPU-relevant tests: every learner through the conformance battery and the meta-step
# (task maps, NaN guard, jit vs op-by-op), the conv layer's orders of differentiation, and
# the sharded meta-step on one device. They run in float64 (tests/conftest.py).
TESTS = ("tests/test_meta_step.py", "tests/test_conv.py", "tests/test_sharding.py")
DRY_TESTS = ("tests/test_sharding.py::test_mesh_must_be_a_mesh",)

# `jmeta train` at the papers' settings: Finn et al. 2017 for MAML; for ProtoNets the
# registry's Omniglot recipe (Snell et al. 2017: one 60-way episode with 5 queries per class per
# update, Adam 1e-3 halved every 2,000), tested 5-way 1-shot.
PAPER_ARGS = {
    "maml": ["--algo", "maml", "--ways", "5", "--shots", "1", "--meta-batch", "32",
             "--inner-steps", "1", "--inner-lr", "0.4", "--meta-lr", "1e-3",
             "--eval-episodes", "600"],
    "protonet": ["--algo", "protonet", "--ways", "5", "--shots", "1", "--eval-episodes", "600"],
}
# Appended in a dry run (argparse keeps the last value): fake archives, tiny net and episodes.
DRY_TRAIN_ARGS = ["--archive-check", "layout", "--split", "lake", "--num-valid", "1",
                  "--ways", "3", "--queries", "2", "--hidden", "4", "--meta-batch", "2",
                  "--iterations", "4", "--log-every", "2", "--val-episodes", "0",
                  "--eval-episodes", "6"]
# The fake archives have 24 training classes: ProtoNets trains on 3-way episodes there.
DRY_ALGO_ARGS = {"maml": [], "protonet": ["--train-ways", "3"]}
DRY_CHARS = {"images_background": [3, 3, 3], "images_evaluation": [3, 3]}

# Seconds: each step's limit, and what a training run needs besides its --time-budget
# (loading the data, compiling the first block of meta-steps, 600 test episodes).
PLAN = {"total": 525.0, "env": 45.0, "tests": 100.0, "speed": 110.0,
        "overhead": {"maml": 60.0, "protonet": 40.0}, "min_budget": {"maml": 60.0, "protonet": 30.0},
        "protonet_floor": 45.0}
DRY_PLAN = {"total": 400.0, "env": 60.0, "tests": 60.0, "speed": 120.0,
            "overhead": {"maml": 60.0, "protonet": 60.0}, "min_budget": {"maml": 1.0, "protonet": 1.0},
            "protonet_floor": 1.0}
STEPS = ("env", "tests", "speed", "maml", "protonet")
# The "Done when" figures of issue 19.
SPEED_GOAL = 5.0  # jmeta / peer meta-steps/s on Omniglot MAML, meta-batch 32
SPEED_GOAL_PEERS = ("torch.func", "higher")
MAML_GOAL = 0.98  # 5-way 1-shot test accuracy


def _now() -> str:
  return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def log(msg: str) -> None:
  print(f"[gpu-run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# Running one step.

def run_step(name: str, cmd: list[str], timeout: float, log_path: str,
             env: Optional[dict] = None) -> dict[str, Any]:
  """Runs ``cmd`` in its own process group, output to ``log_path``; never raises.

  On timeout the whole group (pytest workers, harness workers) is stopped.
  """
  full_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=_harness.python_path())
  full_env.update(env or {})
  res: dict[str, Any] = {"step": name, "cmd": cmd, "timeout_s": round(timeout, 1),
                         "env": env or {}}
  if timeout < 1:
    res.update(status="skipped", rc=None, wall_s=0.0,
               note="skipped: the run's deadline left no time for this step")
    log(f"{name}: {res['note']}")
    return res
  log(f"{name}: {' '.join(cmd[1:] if cmd[0] == sys.executable else cmd)} (limit {timeout:.0f} s)")
  t = time.monotonic()
  with open(log_path, "w") as out:
    try:
      p = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                           start_new_session=True)
    except OSError as e:
      res.update(status="failed", rc=None, wall_s=0.0, note=f"could not start: {e}")
      return res
    try:
      rc = p.wait(timeout=timeout)
      res.update(status="ok" if rc == 0 else "failed", rc=rc)
    except subprocess.TimeoutExpired:
      _stop_group(p)
      res.update(status="timed out", rc=p.returncode, note=f"stopped at its {timeout:.0f} s limit")
  res["wall_s"] = round(time.monotonic() - t, 1)
  log(f"{name}: {res['status']} in {res['wall_s']} s")
  return res


def _stop_group(p: subprocess.Popen) -> None:
  """SIGTERM, then SIGKILL, to the step's process group (it was started as its own session)."""
  for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
    try:
      os.killpg(p.pid, sig)
    except ProcessLookupError:
      return
    try:
      p.wait(timeout=wait)
      return
    except subprocess.TimeoutExpired:
      continue


def _tail(path: str, limit: int = 400_000) -> str:
  try:
    with open(path, errors="replace") as f:
      text = f.read()
  except OSError:
    return ""
  return text if len(text) <= limit else "[... cut ...]\n" + text[-limit:]


# --------------------------------------------------------------------------
# Step 1: the environment (runs in a subprocess: ``python -m benchmarks.gpu.run _env``).

ENV_MARK = "@@ENV@@ "
DISTS = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
         "jax-cuda12-pjrt", "flax", "optax", "chex", "orbax-checkpoint", "equinox", "numpy",
         "torch", "higher", "torchopt", "optree", "tensorflow-datasets", "array_record",
         "pillow", "pytest", "pytest-xdist", "jmeta")


def env_info() -> dict[str, Any]:
  """Versions, devices and the GPU as this process sees them (imports jax, then torch)."""
  import importlib.metadata as md
  import platform
  info: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable,
                          "platform": platform.platform(), "cpus": os.cpu_count(),
                          "versions": {}, "env": {k: os.environ.get(k) for k in (
                              "XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE",
                              "XLA_PYTHON_CLIENT_MEM_FRACTION", "JAX_PLATFORMS", "PYTHONPATH")}}
  for d in DISTS:
    try:
      info["versions"][d] = md.version(d)
    except md.PackageNotFoundError:
      info["versions"][d] = None
  try:
    import jax
    devs = jax.devices()
    info["jax_backend"] = jax.default_backend()
    info["jax_devices"] = [str(d) for d in devs]
    info["device_kind"] = devs[0].device_kind
    import jmeta
    info["jmeta_file"] = jmeta.__file__
    info["task_map_auto"] = ("vmap (not the CPU: jmeta's task_map='auto' always vmaps)"
                             if jax.default_backend() != "cpu" else
                             "CPU: scan for Omniglot-sized tasks, vmap for sinusoid")
  except Exception as e:  # noqa: BLE001 - a report row
    info["jax_error"] = f"{type(e).__name__}: {e}"[:500]
  try:
    import torch
    info["torch_cuda"] = {"available": torch.cuda.is_available(), "cuda": torch.version.cuda,
                          "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else None}
  except Exception as e:  # noqa: BLE001
    info["torch_cuda"] = {"available": False, "error": f"{type(e).__name__}: {e}"[:300]}
  smi = shutil.which("nvidia-smi")
  if smi:
    try:
      q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm,"
                          "power.limit", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=30)
      info["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
      info["nvidia_smi"] = f"failed: {e}"
  return info


# --------------------------------------------------------------------------
# Reading each step's outputs.

_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in ([\d.]+)s", re.M)


def pytest_summary(log_text: str) -> dict[str, Any]:
  """Counts from pytest's last summary line, and the ids of failed tests."""
  counts: dict[str, Any] = {}
  lines = [m for m in _SUMMARY.finditer(log_text)]
  if lines:
    m = lines[-1]
    for n, what in re.findall(r"(\d+) (\w+)", m.group(1)):
      counts[what] = int(n)
    counts["seconds"] = float(m.group(2))
    counts["line"] = m.group(0).strip("= ")
  counts["failed_ids"] = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", log_text, re.M)))
  return counts


def speed_summary(results: dict[str, Any]) -> dict[str, Any]:
  """Per config: each implementation's median meta-steps/s, the gated ratios, the table rows."""
  out: dict[str, Any] = {"machine": results.get("machine"), "configs": {}}
  sections = {s["title"]: s for s in results.get("sections", [])}
  for name, d in (results.get("data") or {}).items():
    if name == "peak" or not isinstance(d, dict) or "speed" not in d:
      continue
    impls = (d["speed"].get("impls") or {}) if d["speed"].get("ok") else {}
    rates = {}
    for impl, r in impls.items():
      rs = sorted(r.get("rates") or [])
      rates[impl] = rs[len(rs) // 2] if rs else None
    sec = sections.get(f"Speed: {name}", {})
    out["configs"][name] = {
        "steps_per_s": rates, "ratios": d.get("ratios") or {},
        "first_call_s": {i: r.get("first_call_s") for i, r in impls.items()},
        "speed_error": None if d["speed"].get("ok") else d["speed"].get("error"),
        "grad_error": None if d["grad"].get("ok") else d["grad"].get("error"),
        "table": sec.get("table")}
  return out


def train_summary(out_dir: str) -> Optional[dict[str, Any]]:
  """The figures of one ``jmeta train`` run's ``results.json`` (None if it wrote none)."""
  path = os.path.join(out_dir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    r = json.load(f)
  t = r.get("timing", {})
  return {"accuracy": r.get("accuracy"), "ci95": r.get("ci95"), "meta_steps": r.get("meta_steps"),
          "meta_steps_per_s": t.get("meta_steps_per_s"), "train_s": t.get("train_s"),
          "first_block_s": t.get("first_block_s"), "eval_s": t.get("eval_s"),
          "load_s": t.get("load_s"), "validation_s": t.get("validation_s"),
          "best_val": r.get("best_val"), "config": r.get("config")}


# --------------------------------------------------------------------------
# The run.

def _deadline_left(deadline: float) -> float:
  return deadline - time.monotonic()


def main(argv: Optional[list[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["_env"]:
    print(ENV_MARK + json.dumps(env_info()), flush=True)
    return 0
  p = argparse.ArgumentParser(prog="python -m benchmarks.gpu.run", description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default=os.environ.get("OUT"),
                 help="folder for the report (default $OUT)")
  p.add_argument("--data", default=DEFAULT_DATA,
                 help="prepared Omniglot folder (TFDS data dir; default .gpu/omniglot, made by"
                 " benchmarks/gpu/prepare.sh)")
  p.add_argument("--work", default=None, help="scratch folder (default a new temporary one)")
  p.add_argument("--dry-run", action="store_true",
                 help="tiny settings and fake Omniglot archives: checks the script on any machine")
  p.add_argument("--total", type=float, default=None, help="deadline of the whole run in seconds")
  p.add_argument("--maml-budget", type=float, default=240.0,
                 help="MAML's --time-budget in seconds (at most; the deadline may shrink it)")
  p.add_argument("--protonet-budget", type=float, default=90.0,
                 help="ProtoNets' --time-budget in seconds (at most)")
  p.add_argument("--only", default=",".join(STEPS),
                 help=f"comma-separated steps to run (default all: {','.join(STEPS)})")
  p.add_argument("--tests", nargs="*", default=None, help="pytest arguments instead of the default")
  args = p.parse_args(argv)
  if not args.out:
    p.error("--out is needed (or $OUT)")
  only = [s for s in args.only.split(",") if s]
  bad = [s for s in only if s not in STEPS]
  if bad:
    p.error(f"--only: unknown step(s) {bad}; expected some of {list(STEPS)}")
  plan = dict(DRY_PLAN if args.dry_run else PLAN)
  if args.total is not None:
    plan["total"] = args.total
  t0 = time.monotonic()
  deadline = t0 + plan["total"]
  os.makedirs(args.out, exist_ok=True)
  work = args.work or tempfile.mkdtemp(prefix="jmeta-gpu-")
  os.makedirs(work, exist_ok=True)
  report: dict[str, Any] = {"started": _now(), "dry_run": args.dry_run, "plan": plan,
                            "argv": argv, "work": work, "steps": []}
  budgets = {"maml": args.maml_budget, "protonet": args.protonet_budget}
  if args.dry_run:
    budgets = {"maml": min(budgets["maml"], 2.0), "protonet": min(budgets["protonet"], 2.0)}
  py = sys.executable

  def reserve_after(step: str) -> float:
    """Seconds the steps after ``step`` need at least (their minimum budgets and overheads)."""
    need = 0.0
    for s in STEPS[STEPS.index(step) + 1:]:
      if s in only and s in budgets:
        need += plan["overhead"][s] + plan["min_budget"][s]
    return need

  def limit(step: str) -> float:
    return max(0.0, min(plan[step], _deadline_left(deadline) - reserve_after(step)))

  # 1. environment
  env: dict[str, Any] = {}
  if "env" in only:
    path = os.path.join(work, "env.log")
    r = run_step("env", [py, "-m", "benchmarks.gpu.run", "_env"], limit("env"), path)
    text = _tail(path)
    found = [l[len(ENV_MARK):] for l in text.splitlines() if l.startswith(ENV_MARK)]
    env = json.loads(found[-1]) if found else {"error": text[-2000:] or r.get("note", "no output")}
    report["steps"].append(r)
    with open(os.path.join(args.out, "env.txt"), "w") as f:
      f.write(text)
  report["env"] = env
  torch_device = "cuda" if (env.get("torch_cuda") or {}).get("available") else "cpu"

  # 2. tests
  if "tests" in only:
    path = os.path.join(work, "pytest.log")
    targets = args.tests if args.tests is not None else list(DRY_TESTS if args.dry_run else TESTS)
    cmd = [py, "-m", "pytest", "-q", "-rfE", "--tb=short", "-p", "no:cacheprovider",
           *(["-n", "0"] if args.dry_run else ["-n", "8", "--maxprocesses", "8"]), *targets]
    # Several pytest workers share the GPU: none may take 75% of its memory up front.
    r = run_step("tests", cmd, limit("tests"), path, env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"})
    text = _tail(path)
    r["summary"] = pytest_summary(text)
    report["tests"] = r["summary"]
    report["steps"].append(r)
    with open(os.path.join(args.out, "pytest.txt"), "w") as f:
      f.write(text)

  # 3. speed against the peers
  if "speed" in only:
    sp_out = os.path.join(work, "speed")
    lim = limit("speed")
    # The harness stops starting jobs at its budget; leave it time to write its report.
    budget_min = max(lim - 20.0, 10.0) / 60.0
    cmd = [py, "-m", "benchmarks", "run", "speed", "--quick", "--speed-only", "--out", sp_out,
           "--torch-device", torch_device, "--budget-min", f"{budget_min:.2f}"]
    cmd += (["--meta-batch", "2", "--configs", "sinusoid-1step"] if args.dry_run else
            ["--meta-batch", "32", "--configs", "omniglot,sinusoid-1step"])
    # jax and torch share the GPU inside the timed process: jax takes half, not 75%.
    r = run_step("speed", cmd, lim, os.path.join(work, "speed.log"),
                 env={"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"})
    res_path = os.path.join(sp_out, "results.json")
    if os.path.exists(res_path):
      with open(res_path) as f:
        results = json.load(f)
      report["speed"] = speed_summary(results)
      shutil.copy(res_path, os.path.join(args.out, "speed.json"))
      shutil.copy(os.path.join(sp_out, "report.md"), os.path.join(args.out, "speed.md"))
    else:
      report["speed"] = {"error": "the harness wrote no results.json",
                         "log_tail": _tail(os.path.join(work, "speed.log"), 3000)}
    report["steps"].append(r)

  # 4-5. Omniglot training at the papers' settings
  data = args.data
  extra: list[str] = []
  if args.dry_run and any(s in only for s in ("maml", "protonet")):
    from jmeta.data import write_fake_omniglot
    fake = os.path.join(work, "fake_omniglot")
    write_fake_omniglot(os.path.join(fake, "manual"), DRY_CHARS, drawers=6)
    data = os.path.join(fake, "manual")
    extra = ["--tfds-dir", os.path.join(fake, "tfds")] + DRY_TRAIN_ARGS
  report["train"] = {}
  train_logs = []
  for algo in ("maml", "protonet"):
    if algo not in only:
      continue
    left = _deadline_left(deadline)
    later = reserve_after(algo)
    if algo == "maml" and "protonet" in only:  # ProtoNets keeps at least its floor budget
      later = plan["overhead"]["protonet"] + min(budgets["protonet"], plan["protonet_floor"])
    budget = min(budgets[algo], left - plan["overhead"][algo] - later)
    run_out = os.path.join(work, algo)
    cmd = [py, "-m", "jmeta.cli", "train", "--dataset", "omniglot", "--data-dir", data,
           "--tfds-dir", data, *PAPER_ARGS[algo], "--time-budget", f"{max(budget, 1.0):.0f}",
           "--out", run_out, *extra, *(DRY_ALGO_ARGS[algo] if args.dry_run else [])]
    path = os.path.join(work, f"{algo}.log")
    if budget < plan["min_budget"][algo]:
      r = run_step(algo, cmd, 0.0, path)
    else:
      r = run_step(algo, cmd, max(0.0, _deadline_left(deadline) - later), path)
    r["time_budget_s"] = round(budget, 1)
    report["train"][algo] = train_summary(run_out)
    report["steps"].append(r)
    train_logs.append(f"===== {algo}: {' '.join(cmd[1:])}\n" + _tail(path, 2_000_000))
  if train_logs:
    with open(os.path.join(args.out, "train.txt"), "w") as f:
      f.write("\n\n".join(train_logs))

  report["finished"] = _now()
  report["total_s"] = round(time.monotonic() - t0, 1)
  report["targets"] = targets_of(report)
  with open(os.path.join(args.out, "report.json"), "w") as f:
    json.dump(report, f, indent=1, default=str)
  md = render(report)
  with open(os.path.join(args.out, "report.md"), "w") as f:
    f.write(md)
  print(md, flush=True)
  return 0 if all(s["status"] in ("ok",) for s in report["steps"]) else 1


def targets_of(report: dict[str, Any]) -> list[dict[str, Any]]:
  """Issue 19's "Done when" figures: tests pass, >= 5x the peers, MAML >= 98%."""
  out = []
  t = report.get("tests")
  if t is not None:
    ok = bool(t.get("passed")) and not t.get("failed") and not t.get("errors") \
        and not t.get("error")
    out.append({"name": "GPU test subset passes", "measured": t.get("line", "no summary"),
                "met": ok})
  sp = (report.get("speed") or {}).get("configs", {})
  omni = next((v for k, v in sp.items() if k.startswith("omniglot")), None)
  name = next((k for k in sp if k.startswith("omniglot")), "omniglot")
  if "speed" in report:
    for peer in SPEED_GOAL_PEERS:
      r = (omni or {}).get("ratios", {}).get(peer)
      out.append({"name": f"{name}: jmeta / {peer} meta-steps/s >= {SPEED_GOAL:g}x",
                  "measured": f"{r['median']:.3g}x" if r else "not measured",
                  "met": None if not r else r["median"] >= SPEED_GOAL})
  m = (report.get("train") or {}).get("maml")
  if "maml" in (report.get("train") or {}):
    out.append({"name": f"MAML 5-way 1-shot test accuracy >= {100 * MAML_GOAL:.1f}%",
                "measured": (f"{100 * m['accuracy']:.2f} +/- {100 * m['ci95']:.2f}% after "
                             f"{m['meta_steps']} meta-steps" if m else "no result"),
                "met": None if not m else m["accuracy"] >= MAML_GOAL})
  return out


def _f(x: Any, digits: int = 4) -> str:
  if x is None:
    return "-"
  if isinstance(x, float):
    return f"{x:.{digits}g}"
  return str(x)


def render(report: dict[str, Any]) -> str:
  """The report as markdown."""
  env = report.get("env") or {}
  v = env.get("versions") or {}
  lines = [f"# jmeta GPU run{' (DRY RUN: tiny settings, fake Omniglot)' if report['dry_run'] else ''}",
           "", f"{report['started']} to {report['finished']}, {report['total_s']} s "
           f"(deadline {report['plan']['total']:.0f} s).", ""]
  lines += [f"Device: {env.get('device_kind', '?')} ({env.get('jax_backend', '?')}; "
            f"jax.devices() = {env.get('jax_devices')}); nvidia-smi: {env.get('nvidia_smi', '-')}; "
            f"torch CUDA: {env.get('torch_cuda')}.", "",
            "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".", "",
            f"jmeta from {env.get('jmeta_file', '?')}; task_map='auto': "
            f"{env.get('task_map_auto', '-')}.", ""]
  if env.get("jax_error") or env.get("error"):
    lines += [f"Environment error: `{env.get('jax_error') or env.get('error')}`", ""]
  lines += ["## Steps", "", "| step | status | wall s | limit s | note |", "|---|---|---|---|---|"]
  for s in report["steps"]:
    note = s.get("note", "")
    if "time_budget_s" in s:
      note = (note + "; " if note else "") + f"--time-budget {s['time_budget_s']:.0f} s"
    lines.append(f"| {s['step']} | {s['status']} (rc {s.get('rc')}) | {s.get('wall_s')} | "
                 f"{s.get('timeout_s')} | {note} |")
  lines.append("")
  if report.get("targets"):
    lines += ["## Targets (issue 19)", "", "| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
      lines.append(f"| {t['name']} | {t['measured']} | {t['met']} |")
    lines.append("")
  t = report.get("tests")
  if t is not None:
    lines += ["## Tests", "", f"`{t.get('line', 'no pytest summary line (see pytest.txt)')}`", ""]
    if t.get("failed_ids"):
      lines += ["Failed: " + ", ".join(f"`{i}`" for i in t["failed_ids"]), ""]
  sp = report.get("speed")
  if sp is not None:
    lines += ["## Speed (harness `speed` suite, --quick rounds; full tables in speed.md)", ""]
    if sp.get("error"):
      lines += [f"Error: {sp['error']}", "", "```", sp.get("log_tail", ""), "```", ""]
    for name, c in sp.get("configs", {}).items():
      lines += [f"### {name}", ""]
      table = c.get("table")
      if table:
        lines += ["| " + " | ".join(table["headers"][:4]) + " |",
                  "|" + "---|" * 4]
        lines += ["| " + " | ".join(_f(x) for x in row[:4]) + " |" for row in table["rows"]]
      else:
        lines.append(f"not measured: {c.get('speed_error') or c.get('grad_error')}")
      lines.append("")
  tr = report.get("train") or {}
  if tr:
    lines += ["## Omniglot training (`jmeta train`, 600 test episodes, 95% CI)", "",
              "| algo | --time-budget s | meta-steps | meta-steps/s | first block s | eval s | "
              "best val | test accuracy |", "|---|---|---|---|---|---|---|---|"]
    budgets = {s["step"]: s.get("time_budget_s") for s in report["steps"]}
    for algo, r in tr.items():
      if not r:
        lines.append(f"| {algo} | {_f(budgets.get(algo))} | no result (see train.txt) |"
                     " | | | | |")
        continue
      bv = r.get("best_val") or {}
      lines.append(f"| {algo} | {_f(budgets.get(algo))} | {r['meta_steps']} | "
                   f"{_f(r['meta_steps_per_s'])} | {_f(r['first_block_s'])} | {_f(r['eval_s'])} | "
                   f"{_f(bv.get('accuracy'))} (step {bv.get('step')}) | "
                   f"{100 * r['accuracy']:.2f} +/- {100 * r['ci95']:.2f}% |")
    lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())
