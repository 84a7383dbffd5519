"""Running worker jobs in subprocesses, and turning their results into rows.

Every measurement runs in its own ``python -m benchmarks _worker`` process with
a time limit; a job that fails or times out becomes a row that says so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Optional

from benchmarks import _stats
from benchmarks._worker import MARK, PLAIN_JAX

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_THREADS = 2


def python_path() -> str:
  """``PYTHONPATH`` for a subprocess: this repository first, then what was already there
  (e.g. a folder of carried wheels, ``benchmarks/gpu/run.sh``)."""
  rest = os.environ.get("PYTHONPATH", "")
  return REPO + (os.pathsep + rest if rest else "")


def run_job(job: dict, *, timeout: float = 900.0, env: Optional[dict] = None,
            log: Any = None) -> dict:
  """Runs one worker job in a fresh process; never raises.

  Returns:
    The job's result dict (``ok`` False with ``error`` on any failure).
  """
  full_env = dict(os.environ, PYTHONPATH=python_path())
  full_env["BENCH_TORCH_THREADS"] = str(TORCH_THREADS)
  full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  full_env.update(env or {})
  cmd = [sys.executable, "-m", "benchmarks", "_worker", json.dumps(job)]
  t = time.perf_counter()
  label = job.get("impl") or ",".join(job.get("impls", job.get("peers", []))) or job["kind"]
  if log:
    log(f"  [{job['kind']}] {job.get('config', {}).get('name', '')} {label} ...")
  try:
    p = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True,
                       timeout=timeout)
  except subprocess.TimeoutExpired:
    res = {"ok": False, "error": f"timed out after {timeout:.0f} s (not a failure of the"
                                 " implementation: this machine's budget)"}
  else:
    res = None
    for line in p.stdout.splitlines():
      if line.startswith(MARK):
        res = json.loads(line[len(MARK):])
    if res is None and p.returncode < 0:
      res = {"ok": False, "error": f"worker killed by signal {-p.returncode} (stopped from"
                                   " outside, e.g. for the session's time)"}
    if res is None:
      tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
      res = {"ok": False, "error": f"worker exited {p.returncode} without a result: "
                                   + " / ".join(tail)[-300:]}
  res["wall_s"] = time.perf_counter() - t
  if log:
    log(f"      {'ok' if res.get('ok') else 'FAILED: ' + res.get('error', '')} "
        f"({res['wall_s']:.1f} s)")
  return res


def peers_available() -> dict[str, str]:
  """Each peer's status in a fresh process: '' if it imports, else why not."""
  code = ("import json; from benchmarks.peers import PEERS; "
          "from benchmarks.peers._compat import peer_available; "
          "print('@@P', json.dumps({p: peer_available(p)[1] for p in PEERS}))")
  env = dict(os.environ, PYTHONPATH=python_path())
  try:
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    for line in p.stdout.splitlines():
      if line.startswith("@@P "):
        return json.loads(line[4:])
    err = (p.stderr.strip().splitlines() or ["no output"])[-1]
  except subprocess.TimeoutExpired:
    err = "import timed out"
  from benchmarks.peers import PEERS
  return {p: f"torch unavailable: {err}" for p in PEERS}


# --------------------------------------------------------------------------
# Turning results into gate decisions and ratios.

def gate_for(grad_res: dict, peer: str) -> tuple[bool, str, Optional[float]]:
  """The gradient gate's decision for ``peer`` from a ``grad`` job's result."""
  if not grad_res.get("ok"):
    return False, f"gradient check failed: {grad_res.get('error')}", None
  if "jmeta_error" in grad_res:
    return False, f"jmeta gradient unavailable: {grad_res['jmeta_error']}", None
  info = grad_res["peers"].get(peer)
  if info is None:
    return False, "not in gradient check", None
  if "error" in info:
    return False, f"peer failed: {info['error']}", None
  rel = info["rel_diff"]
  ok, why = _stats.gradient_gate(rel, grad_res.get("rtol", _stats.GRAD_RTOL))
  return ok, f"{why} [{grad_res.get('dtype')}]", rel


def speed_rows(speed_res: dict, grad_res: dict, singles: dict[str, dict]) -> tuple[list, dict]:
  """Table rows for one config, and the ratios jmeta/peer that passed the gate."""
  impls = speed_res.get("impls", {}) if speed_res.get("ok") else {}
  j = impls.get("jmeta", {})
  jr = j.get("rates") or []
  rows, ratios = [], {}
  names = list(impls) or list(singles)
  for name in names:
    info = impls.get(name, {})
    s = singles.get(name, {})
    rates = info.get("rates") or []
    rate = _stats.rate_summary(rates) if rates else None
    ratio_txt, gate_txt = "-", "-"
    if name.startswith("jmeta"):
      gate_txt = "reference"
      if name != "jmeta" and rates and jr and len(rates) == len(jr):
        r = _stats.ratio_summary(rates, jr)
        ratio_txt = f"{r['median']:.3g}x of jmeta"
    else:
      ok, why, _ = gate_for(grad_res, name)
      gate_txt = why
      if "error" in info:
        ratio_txt = f"not measured: {info['error']}"
      elif not ok:
        ratio_txt = "withheld (gradient gate)"
      elif rates and jr:
        n = min(len(rates), len(jr))
        r = _stats.ratio_summary(jr[:n], rates[:n])
        ratios[name] = r
        ratio_txt = f"{r['median']:.3g}x [{r['min']:.3g}-{r['max']:.3g}]"
    compile_s = None
    if s.get("ok") and (name.startswith("jmeta") or name in PLAIN_JAX):
      compile_s = s["first_call_s"] - s["steady_step_s"] * (16 if name == "jmeta-scan" else 1)
    err = info.get("error") or (None if not s or s.get("ok") else s.get("error"))
    rows.append([
        name,
        f"{rate['median']:.4g} [{rate['q1']:.4g}-{rate['q3']:.4g}]" if rate else f"n/a ({err})",
        ratio_txt, gate_txt,
        s.get("import_s") if s.get("ok") else None,
        s.get("first_call_s") if s.get("ok") else None,
        compile_s,
        s.get("peak_rss_mb") if s.get("ok") else None,
        s.get("peak_over_import_mb") if s.get("ok") else None,
    ])
  return rows, ratios


SPEED_HEADERS = ["implementation", "meta-steps/s median [IQR]",
                 "jmeta/peer speed ratio median [min-max]", "gradient check",
                 "import s", "first call s", "compile s (first - steady)",
                 "peak RSS MiB", "peak over post-import RSS MiB"]


def finite(x: Any) -> bool:
  return isinstance(x, (int, float)) and math.isfinite(x)
