"""What runs inside one measurement subprocess.

``python -m benchmarks _worker JOB_JSON`` runs one job and prints its result
as one line ``@@RESULT@@ {json}``. Each job is in a fresh process so that peak
memory (``ru_maxrss``), import time and first-call latency of one
implementation are not polluted by another. Jobs:

* ``grad``: meta-gradients of jmeta and every peer on the same weights and
  batch, float64 where possible; max relative difference per peer.
* ``speed``: every implementation built in one process, then timed in
  interleaved rounds (jmeta, peer1, peer2, ..., jmeta, peer1, ...).
* ``single``: one implementation alone: import, build, first call, a few
  steady steps, peak RSS.
* ``peak``: the backend's float32 matmul rate and XLA's FLOPs of a meta-step.
* ``devices``: jmeta steps/s with the task batch sharded over the (virtual)
  devices of this process.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from typing import Any

MARK = "@@RESULT@@"
JAX_IMPLS = ("jmeta", "jmeta-full", "jmeta-scan", "jax", "jax-scan")
PLAIN_JAX = ("jax", "jax-scan")  # hand-written meta-steps, benchmarks._plain_jax


def rss_mb() -> float:
  """Current resident set size in MiB."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  return float("nan")


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _import_side(impl: str) -> None:
  if impl in PLAIN_JAX:
    import jax  # noqa: F401
    import optax  # noqa: F401
  elif impl in JAX_IMPLS:
    import jax  # noqa: F401
    import jmeta  # noqa: F401
  else:
    from benchmarks.peers._compat import import_peer, setup_torch
    setup_torch(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
    import_peer(impl)


def build(impl: str, cfg, weights, batches, dtype: str = "float32", scan: int = 16):
  """Builds one implementation (``jmeta``, ``jmeta-full``, ``jmeta-scan``, ``jax``, ``jax-scan`` or a peer name)."""
  if impl in PLAIN_JAX:
    from benchmarks._plain_jax import TASK_MAPS, PlainJaxImpl
    return PlainJaxImpl(cfg, weights, batches, dtype, task_map=TASK_MAPS[impl])
  if impl == "jmeta":
    from benchmarks._jax_side import JmetaImpl
    return JmetaImpl(cfg, weights, batches, dtype)
  if impl == "jmeta-full":
    from benchmarks._jax_side import JmetaImpl
    return JmetaImpl(cfg, weights, batches, dtype, metrics="full", donate=False)
  if impl == "jmeta-scan":
    from benchmarks._jax_side import JmetaImpl
    return JmetaImpl(cfg, weights, batches, dtype, scan=scan)
  from benchmarks.peers._compat import setup_torch
  from benchmarks.peers._maml import make_peer
  setup_torch(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
  return make_peer(impl, cfg, weights, batches, dtype)


def _err(e: BaseException) -> str:
  return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def grad_env() -> dict:
  """The environment of a ``grad`` job: XLA_FLAGS with the float64 workaround.

  XLA:CPU in jaxlib >= 0.10.2 miscompiles some float64 programs of conv ->
  batch norm -> ReLU -> max-pool (README, "Known issues"); the workaround
  (its algebraic simplifier off) is added only for those releases, by
  jmeta's one helper. The job also compares jmeta's jit gradient with its
  op-by-op gradient.
  """
  from jmeta import xla_flags_with_f64_workaround
  return {"XLA_FLAGS": xla_flags_with_f64_workaround(os.environ.get("XLA_FLAGS", ""))}


def job_grad(job: dict) -> dict:
  """Meta-gradients of jmeta and the peers on one batch, float64 first.

  ``job["peers"]`` may name the hand-written JAX steps (``jax``, ``jax-scan``)
  too: they pass the same gate as the PyTorch peers before they are timed.

  The float64 gradient of jmeta (jit-compiled) is the reference; it is also
  checked against jmeta's op-by-op (``jax.disable_jit``) gradient. Each
  peer's float64 gradient is compared with it (the gate), and so is each
  implementation's float32 gradient (``f32_err``: float32 rounding error of
  the whole second-order computation, an accuracy figure, not a gate).
  """
  from benchmarks import _configs, _stats
  import numpy as np
  cfg = _configs.Config.from_dict(job["config"])
  out: dict[str, Any] = {"peers": {}, "xla_flags": os.environ.get("XLA_FLAGS", "")}
  weights = _configs.init_weights(cfg)
  finite = lambda g: all(np.all(np.isfinite(v)) for v in g.values())
  ref = None
  for dtype, rtol in (("float64", _stats.GRAD_RTOL), ("float32", _stats.GRAD_RTOL_F32)):
    import jax
    jax.config.update("jax_enable_x64", dtype == "float64")
    batches = _configs.make_batches(cfg, 1, dtype=dtype)
    try:
      impl = build("jmeta", cfg, weights, batches, dtype)
      ref = impl.meta_grad()
      if dtype == "float64" and job.get("eager_check", True):
        with jax.disable_jit():
          eager = impl.meta_grad()
        out["jit_vs_eager"] = _stats.max_rel_diff(ref, eager)
    except Exception as e:  # noqa: BLE001
      out["jmeta_error"] = _err(e)
      return out
    if finite(ref) and out.get("jit_vs_eager", 0.0) <= rtol:
      out["dtype"], out["rtol"] = dtype, rtol
      break
    out.setdefault("notes", []).append(
        f"jmeta's {dtype} meta-gradient is non-finite or differs from its op-by-op "
        f"gradient ({out.get('jit_vs_eager', float('nan')):.2e}); compared in the next dtype")
  else:
    out["jmeta_error"] = "jmeta's meta-gradient is unusable in float64 and float32"
    return out
  for name in job["peers"]:
    try:
      g = build(name, cfg, weights, batches, dtype).meta_grad()
      out["peers"][name] = {"rel_diff": _stats.max_rel_diff(g, ref)}
    except Exception as e:  # noqa: BLE001
      out["peers"][name] = {"error": _err(e)}
  if out["dtype"] == "float64" and job.get("f32_errors", True):
    jax.config.update("jax_enable_x64", False)
    b32 = _configs.make_batches(cfg, 1, dtype="float32")
    out["f32_err"] = {}
    for name in ["jmeta"] + list(job["peers"]):
      try:
        g = build(name, cfg, weights, b32, "float32").meta_grad()
        out["f32_err"][name] = _stats.max_rel_diff(g, ref)
      except Exception as e:  # noqa: BLE001
        out["f32_err"][name] = _err(e)
  return out


def job_speed(job: dict) -> dict:
  from benchmarks import _configs
  cfg = _configs.Config.from_dict(job["config"])
  weights = _configs.init_weights(cfg)
  batches = _configs.make_batches(cfg, job.get("n_batches", 4))
  impls, res = {}, {}
  for name in job["impls"]:
    try:
      t = time.perf_counter()
      impl = build(name, cfg, weights, batches, "float32", scan=job.get("scan", 16))
      t_build = time.perf_counter() - t
      t = time.perf_counter()
      impl.step()
      impl.sync()
      res[name] = {"build_s": t_build, "first_call_s": time.perf_counter() - t, "rates": []}
      impls[name] = impl
    except Exception as e:  # noqa: BLE001
      res[name] = {"error": _err(e)}
  # Calibrate each implementation's calls per round to ~round_s seconds.
  round_s, budget = job.get("round_s", 1.0), job.get("budget_s", 120.0)
  calls = {}
  for name, impl in impls.items():
    t = time.perf_counter()
    impl.step()
    impl.sync()
    dt = max(time.perf_counter() - t, 1e-6)
    calls[name] = max(1, min(10000, int(round_s / dt)))
    res[name]["calls_per_round"] = calls[name]
  t_start = time.perf_counter()
  for r in range(job.get("rounds", 5)):
    for name, impl in impls.items():
      t = time.perf_counter()
      for _ in range(calls[name]):
        impl.step()
      impl.sync()
      dt = time.perf_counter() - t
      res[name]["rates"].append(calls[name] * impl.steps_per_call / dt)
    if r >= 2 and time.perf_counter() - t_start > budget:
      break  # a slow machine gets fewer rounds, never a failure
  if "jmeta" in impls:
    from benchmarks._jax_side import flops_note
    res["jmeta"]["flops_per_step"] = impls["jmeta"].cost_flops()
    res["jmeta"]["flops_note"] = flops_note(impls["jmeta"].cfg)
  return {"impls": res}


def job_single(job: dict) -> dict:
  from benchmarks import _configs
  cfg = _configs.Config.from_dict(job["config"])
  impl_name = job["impl"]
  rss0 = rss_mb()
  t = time.perf_counter()
  _import_side(impl_name)
  t_import = time.perf_counter() - t
  rss_import = rss_mb()
  weights = _configs.init_weights(cfg)
  batches = _configs.make_batches(cfg, job.get("n_batches", 2))
  t = time.perf_counter()
  impl = build(impl_name, cfg, weights, batches)
  t_build = time.perf_counter() - t
  rss_built = rss_mb()
  t = time.perf_counter()
  impl.step()
  impl.sync()
  t_first = time.perf_counter() - t
  n = job.get("steps", 3)
  t = time.perf_counter()
  for _ in range(n):
    impl.step()
  impl.sync()
  t_steady = (time.perf_counter() - t) / (n * impl.steps_per_call)
  return {"impl": impl_name, "import_s": t_import, "build_s": t_build,
          "first_call_s": t_first, "steady_step_s": t_steady,
          "rss_start_mb": rss0, "rss_after_import_mb": rss_import,
          "rss_after_build_mb": rss_built, "peak_rss_mb": peak_rss_mb(),
          "peak_over_import_mb": peak_rss_mb() - rss_import}


def job_peak(job: dict) -> dict:
  from benchmarks._jax_side import peak_matmul_flops
  return peak_matmul_flops(job.get("n", 2048), job.get("reps", 10))


def job_devices(job: dict) -> dict:
  import jax
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  from benchmarks import _configs
  from benchmarks._jax_side import JmetaImpl
  cfg = _configs.Config.from_dict(job["config"])
  impl = JmetaImpl(cfg, _configs.init_weights(cfg), _configs.make_batches(cfg, 2))
  devs = jax.devices()
  mesh = Mesh(np.array(devs), ("tasks",))
  shard = NamedSharding(mesh, P("tasks"))
  impl.tasks = [jax.device_put(t, shard) for t in impl.tasks]
  impl.state = jax.device_put(impl.state, NamedSharding(mesh, P()))
  t = time.perf_counter()
  impl.step()
  impl.sync()
  first = time.perf_counter() - t
  rates = []
  for _ in range(job.get("rounds", 3)):
    n = job.get("calls", 20)
    t = time.perf_counter()
    for _ in range(n):
      impl.step()
    impl.sync()
    rates.append(n / (time.perf_counter() - t))
  return {"devices": len(devs), "first_call_s": first, "rates": rates}


def job_profile(job: dict) -> dict:
  """Where a jmeta meta-step's time goes: ``update``'s checks, dispatch, compute."""
  import jax
  import jax.numpy as jnp
  from benchmarks import _configs
  from benchmarks._jax_side import JmetaImpl
  cfg = _configs.Config.from_dict(job["config"])
  impl = JmetaImpl(cfg, _configs.init_weights(cfg), _configs.make_batches(cfg, 2), scan=16)
  ms, tasks, state0 = impl.meta_step, impl.tasks, impl.state
  raw = jax.jit(ms.step_fn)
  touch = jax.jit(lambda s, t: (s, {"x": t.query_y.sum()}))  # same pytrees in and out, ~no compute
  multi, stacked = impl._multi, impl.stacked

  fresh = lambda: jax.tree.map(jnp.copy, state0)  # ``update`` donates (the jmeta row's step)

  def per_call(fn, n):
    jax.block_until_ready(fn(fresh(), 0))
    best = float("inf")
    for _ in range(job.get("rounds", 5)):
      s = jax.block_until_ready(fresh())
      t = time.perf_counter()
      for i in range(n):
        s, m = fn(s, i)
      jax.block_until_ready((s, m))
      best = min(best, (time.perf_counter() - t) / n)
    return best

  n = job.get("calls", 200)
  res = {
      "update_s": per_call(lambda s, i: ms.update(s, tasks[i % 2]), n),
      "jit_step_fn_s": per_call(lambda s, i: raw(s, tasks[i % 2]), n),
      "scan16_per_step_s": per_call(lambda s, i: multi(s, stacked[i % 2]), max(n // 16, 5)) / 16,
      "dispatch_only_s": per_call(lambda s, i: touch(s, tasks[i % 2]), n),
      "n_state_leaves": len(jax.tree.leaves(state0)),
  }
  # What ``update`` adds to the jitted step (its Python checks of the task
  # batch and dispatch), from public calls only.
  res["update_overhead_s"] = res["update_s"] - res["jit_step_fn_s"]
  return res


JOBS = {"profile": job_profile, "grad": job_grad, "speed": job_speed, "single": job_single,
        "peak": job_peak, "devices": job_devices}


def main(argv: list[str]) -> int:
  job = json.loads(argv[0])
  try:
    result = {"ok": True, **JOBS[job["kind"]](job)}
  except Exception as e:  # noqa: BLE001 - reported, never raised
    result = {"ok": False, "error": _err(e), "traceback": traceback.format_exc()[-2000:]}
  sys.stdout.write(f"\n{MARK} {json.dumps(result)}\n")
  sys.stdout.flush()
  return 0
