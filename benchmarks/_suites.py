"""The suites: speed, memory, accuracy, scaling. Each returns a run dict for ``_report``."""

from __future__ import annotations

import glob
import importlib.util
import math
import os
import subprocess
import sys
from typing import Any, Callable

from benchmarks import _configs, _harness, _report, _stats, _worker
from benchmarks._worker import PLAIN_JAX
from benchmarks.peers import PEERS

Log = Callable[[str], None]

# Targets of issue 8 (jmeta/peer meta-steps per second) and issue 15 (jmeta
# within 10% of the hand-written JAX step on sinusoid MAML).
SPEED_TARGETS = [("sinusoid-1step", "jax", 0.9), ("sinusoid-5step", "jax", 0.9),
                 ("sinusoid-5step", "learn2learn", 30.0), ("sinusoid-5step", "torch.func", 5.0),
                 ("sinusoid-1step", "learn2learn", 30.0), ("sinusoid-1step", "torch.func", 5.0),
                 ("omniglot", "learn2learn", 2.0)]


class Ctx:
  """What a suite needs: quick flag, output folder, logger, peer status."""

  def __init__(self, quick: bool, out_dir: str, log: Log, budget_s: float | None = None,
               meta_batch: int | None = None, configs: tuple[str, ...] | None = None,
               speed_only: bool = False, rounds: int | None = None):
    import time
    self.quick, self.out_dir, self.log = quick, out_dir, log
    self.meta_batch = meta_batch  # Omniglot meta-batch of the speed suite (None: its default)
    self.configs = configs  # speed-suite config names (or prefixes) to run, in this order
    self.speed_only = speed_only  # speed suite: no fresh-process figures, no profile
    self.rounds = rounds  # interleaved timed rounds of the speed and conv suites (None: default)
    self._peers = None
    self.deadline = None if budget_s is None else time.monotonic() + budget_s
    self.budget_s = budget_s
    os.makedirs(out_dir, exist_ok=True)

  def job(self, job: dict, *, timeout: float = 900.0, env: dict | None = None) -> dict:
    """``_harness.run_job`` within the suite's time budget (a skipped job is a row)."""
    import time
    if self.deadline is not None:
      left = self.deadline - time.monotonic()
      if left < 30:
        self.log(f"  [{job['kind']}] skipped: time budget used up")
        return {"ok": False, "error": f"skipped: the suite's time budget "
                                      f"({self.budget_s / 60:.0f} min) was used up"}
      timeout = min(timeout, left)
    return _harness.run_job(job, timeout=timeout, env=env, log=self.log)

  @property
  def peers(self) -> dict[str, str]:
    if self._peers is None:
      self._peers = _harness.peers_available()
      for p, why in self._peers.items():
        self.log(f"peer {p}: {'available' if not why else 'UNAVAILABLE: ' + why}")
    return self._peers

  def available_peers(self) -> list[str]:
    return [p for p, why in self.peers.items() if not why]

  def missing_rows(self, n_cols: int) -> list[list[Any]]:
    return [[p, f"not run: {why}"] + ["-"] * (n_cols - 2) for p, why in self.peers.items() if why]


def _sanitize(name: str) -> str:
  return name.replace(".", "_").replace("/", "_")


# --------------------------------------------------------------------------
def speed_configs(quick: bool, meta_batch: int | None = None,
                  names: tuple[str, ...] | None = None) -> list[_configs.Config]:
  """The speed suite's configs: sinusoid 1 and 5 inner steps, Omniglot 5-way 1-shot.

  Args:
    quick: the Omniglot meta-batch defaults to 4 instead of 16.
    meta_batch: the Omniglot meta-batch instead of that default (32 on a GPU).
    names: keep only the configs whose name starts with one of these, in this
      order (e.g. ``("omniglot", "sinusoid-1step")``).

  Raises:
    ValueError: a name that matches no config.
  """
  tasks = meta_batch if meta_batch is not None else (4 if quick else 16)
  configs = [_configs.sinusoid_config(1), _configs.sinusoid_config(5),
             _configs.omniglot_config(tasks=tasks)]
  return _pick(configs, names)


def _pick(configs: list[_configs.Config], names: tuple[str, ...] | None) -> list[_configs.Config]:
  """The configs whose name starts with one of ``names``, in that order (all for None)."""
  if names is None:
    return configs
  picked = []
  for n in names:
    match = [c for c in configs if c.name.startswith(n) and c not in picked]
    if not match:
      raise ValueError(f"--configs: {n!r} matches none of {[c.name for c in configs]}")
    picked += match
  return picked


def _measure(ctx: Ctx, configs: list[_configs.Config], peers: list[str], peak: dict,
             kind: str) -> tuple[list, dict, dict]:
  """Gradient checks, interleaved timings and fresh-process figures of ``configs``.

  Every config is timed for jmeta, the hand-written JAX steps (``jax``,
  ``jax-scan``, after the same gradient gate as the peers) and ``peers``.

  Returns:
    ``(sections, data, ratios)``: a report section per config, the raw job
    results per config name, and the gated jmeta/other ratios per config name.
  """
  q = ctx.quick
  sections, data, ratios_all = [], {}, {}
  others = list(PLAIN_JAX) + peers
  # Gradient checks and interleaved timings of every config first, then the
  # fresh-process figures (import, first call, peak RSS): a time budget that
  # runs out skips the latter, not a config's speed.
  measured = {}
  for cfg in configs:
    ctx.log(f"== {cfg.name}")
    grad_cfg = cfg.replace(tasks=min(cfg.tasks, 2)) if cfg.model == "conv" else cfg
    grad = ctx.job({"kind": "grad", "config": grad_cfg.to_dict(), "peers": others},
                   timeout=1800, env=_worker.grad_env())
    impls = ["jmeta"] + (["jmeta-full", "jmeta-scan"] if cfg.model == "mlp" else []) + others
    sp = ctx.job({"kind": "speed", "config": cfg.to_dict(), "impls": impls,
                  "rounds": ctx.rounds or (3 if q else 7), "round_s": 0.3 if q else 1.0,
                  "budget_s": (60 if q else 300) * max(1.0, (ctx.rounds or 0) / 7), "scan": 16},
                 timeout=1800)
    measured[cfg.name] = (grad_cfg, grad, impls, sp)
  for cfg in configs:
    grad_cfg, grad, impls, sp = measured[cfg.name]
    singles = {}
    for name in impls if not ctx.speed_only else []:
      singles[name] = ctx.job({"kind": "single", "config": cfg.to_dict(), "impl": name,
                               "steps": 2 if cfg.model == "conv" else 5},
                              timeout=900)
    rows, ratios = _harness.speed_rows(sp, grad, singles)
    rows += ctx.missing_rows(len(_harness.SPEED_HEADERS))
    ratios_all[cfg.name] = ratios
    jm = (sp.get("impls") or {}).get("jmeta", {}) if sp.get("ok") else {}
    eff = ""
    flops = jm.get("flops_per_step")
    if flops and jm.get("rates") and peak.get("ok"):
      achieved = flops * _stats.median(jm["rates"])
      eff = (f"\n\nCompute efficiency (jmeta): XLA cost analysis {flops:.3g} FLOPs per meta-step x "
             f"{_stats.median(jm['rates']):.4g} steps/s = {achieved / 1e9:.3g} GFLOP/s, "
             f"{100 * achieved / peak['flops_per_s']:.2g}% of the measured float32 matmul peak "
             f"({peak['flops_per_s'] / 1e9:.3g} GFLOP/s, {peak['n']}^2 matmul); FLOPs: "
             f"{jm.get('flops_note', 'XLA cost analysis')}.")
    elif not flops:
      eff = "\n\nCompute efficiency: XLA cost analysis gave no FLOP count for this step."
    notes = "; ".join(grad.get("notes", [])) if grad.get("ok") else ""
    if grad.get("ok") and "jit_vs_eager" in grad:
      notes = "; ".join(x for x in [notes, (
          f"jmeta's float64 jit gradient vs its op-by-op gradient: max rel diff "
          f"{grad['jit_vs_eager']:.1e} (XLA_FLAGS={grad.get('xla_flags')!r}, see README "
          f"'Known issues')")] if x)
    if grad.get("ok") and grad.get("f32_err"):
      errs = ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} failed ({v})"
                       for k, v in grad["f32_err"].items())
      notes = "; ".join(x for x in [notes, (
          f"float32 meta-gradient error against the float64 reference (max rel diff): {errs}")] if x)
    text = (f"Config: `{cfg.to_dict()}`. Same initial weights and task batches in every "
            f"implementation; timed rounds interleave implementations (jmeta, jax, peers, jmeta, "
            f"...) in one process; ratio = jmeta steps/s / other steps/s paired by round. "
            f"`jax` and `jax-scan` are hand-written meta-steps in plain JAX "
            f"(`benchmarks/_plain_jax.py`: `jit` with donation, inner loop `lax.scan`, tasks "
            f"`vmap`-ed or `lax.scan`-ned), so their ratio is jmeta's overhead. "
            f"Gradient check on {grad_cfg.tasks} task(s). Import, first call and peak RSS "
            f"from a separate fresh process per implementation."
            + " `jmeta` is `make_meta_step(..., metrics=\"lean\", donate=True).update`, as"
              " README's quickstart."
            + (" `jmeta-full` is the default `make_meta_step(...).update` (`metrics=\"full\"`: "
               "also `support_loss` after adaptation and `query_loss_before`, one more support "
               "and query forward pass per task; no donation)." if "jmeta-full" in impls else "")
            + (" `jmeta-scan` runs 16 meta-steps per dispatch (`lax.scan` over "
               "`MetaStep.step_fn` inside one `jit`)." if "jmeta-scan" in impls else "")
            + (f"\n\nGradient-check notes: {notes}." if notes else "") + eff)
    shown = [r[0] for r in rows if isinstance(r[1], str) and not r[1].startswith(("n/a", "not run"))]
    fig = _report.bar_plot(os.path.join(ctx.out_dir, f"{kind}_{_sanitize(cfg.name)}.png"), shown,
                           [_stats.median(sp["impls"][n]["rates"]) for n in shown],
                           f"{cfg.algo} {cfg.name}: meta-steps/s (higher is better)", "meta-steps/s")
    sections.append({"title": f"Speed: {cfg.name}", "text": text,
                     "table": {"headers": _harness.SPEED_HEADERS, "rows": rows}, "figure": fig})
    data[cfg.name] = {"grad": grad, "speed": sp, "singles": singles, "ratios": ratios}
  return sections, data, ratios_all


def _peak(ctx: Ctx) -> dict:
  """The machine's float32 matmul rate (the compute-efficiency figures' denominator)."""
  return ctx.job({"kind": "peak", "n": 1024 if ctx.quick else 2048,
                  "reps": 5 if ctx.quick else 10}, timeout=600)


def _ratio_table(configs, data: dict, ratios_all: dict, others: list[str]) -> dict:
  """Per config: jmeta's median meta-steps/s and its gated ratio over each of ``others``."""
  rows = []
  for cfg in configs:
    r = ratios_all.get(cfg.name, {})
    cell = lambda k: f"{r[k]['median']:.3g}x [{r[k]['min']:.3g}-{r[k]['max']:.3g}]" if k in r else "-"
    rates = ((data[cfg.name]["speed"].get("impls") or {}).get("jmeta") or {}).get("rates")
    rows.append([cfg.name, _stats.median(rates) if rates else None] + [cell(k) for k in others])
  return {"headers": ["config", "jmeta meta-steps/s"] + [f"jmeta/{k} median [min-max]" for k in others],
          "rows": rows}


def _ratio_targets(ratios_all: dict, goals) -> list[dict]:
  targets = []
  for key, peer, goal in goals:
    name = next((c for c in ratios_all if c.startswith(key)), None)
    r = ratios_all.get(name, {}).get(peer) if name else None
    v = _stats.target_verdict(r["median"] if r else None, goal)
    targets.append({"name": f"{name or key}: jmeta vs {peer} meta-steps/s", "goal": f">= {goal:g}x",
                    "measured": v["measured"],
                    "measured_text": f"{v['measured']:.3g}x" if v["measured"] else "not measured",
                    "met": v["met"], "by": f"{v['factor']:.2f} of target" if v["factor"] else "-"})
  return targets


def speed(ctx: Ctx) -> dict:
  q = ctx.quick
  configs = speed_configs(q, ctx.meta_batch, ctx.configs)
  peak = _peak(ctx)
  sections, data, ratios_all = _measure(ctx, configs, ctx.available_peers(), peak, "speed")
  data["peak"] = peak
  sections.insert(0, {
      "title": "jmeta against hand-written JAX",
      "text": "jmeta's `make_meta_step(..., metrics=\"lean\", donate=True).update` (the `jmeta` row, README's quickstart) over the same meta-step written "
              "by hand in plain JAX (`benchmarks/_plain_jax.py`, one `jit` with donation): `jax` "
              "vmaps over tasks, `jax-scan` scans over them. Paired by round; a ratio of 0.9 means "
              "jmeta runs at 90% of the hand-written step's meta-steps/s. Versions are in the header "
              "(`python -m benchmarks compare` puts runs on two JAX versions side by side).",
      "table": _ratio_table(configs, data, ratios_all, list(PLAIN_JAX))})
  prow = []
  for cfg in configs:
    if cfg.model != "mlp" or ctx.speed_only:
      continue
    pr = ctx.job({"kind": "profile", "config": cfg.to_dict(), "calls": 50 if q else 200,
                           "rounds": 3 if q else 5}, timeout=900)
    data[cfg.name]["profile"] = pr
    if pr.get("ok"):
      us = lambda k: None if pr.get(k) is None else pr[k] * 1e6
      prow.append([cfg.name, us("update_s"), us("jit_step_fn_s"), us("dispatch_only_s"),
                   us("update_overhead_s"), us("scan16_per_step_s"), pr["n_state_leaves"]])
    else:
      prow.append([cfg.name, f"failed: {pr.get('error')}"] + ["-"] * 5)
  sections.append({
      "title": "Where jmeta's sinusoid meta-step time goes (microseconds per meta-step)",
      "text": "Best of several rounds of back-to-back calls. `update()` is `MetaStep.update` "
              "(Python validation of the task batch + the jitted step); `jit(step_fn)` the same "
              "computation called directly; `dispatch only` a jitted function taking and returning "
              "the same pytrees with next to no compute (the floor of one call from Python); "
              "`update() - jit(step_fn)` what `update` adds (its checks of the task batch); "
              "`scan16` 16 meta-steps in one dispatch (`lax.scan` over `step_fn`), per meta-step.",
      "table": {"headers": ["config", "update() us", "jit(step_fn) us", "dispatch only us",
                            "update() - jit(step_fn) us", "scan16 per step us", "state leaves"],
                "rows": prow}})
  targets = _ratio_targets(ratios_all, SPEED_TARGETS)
  # Memory beside speed: jmeta's peak RSS against every peer's, per config.
  for cfg in configs:
    singles = data[cfg.name]["singles"]
    j = singles.get("jmeta", {})
    others = {p: s["peak_rss_mb"] for p, s in singles.items() if p in PEERS and s.get("ok")}
    if j.get("ok") and others:
      worst = min(others.values())
      targets.append({"name": f"{cfg.name}: jmeta peak RSS <= every peer's", "goal": "<= min peer",
                      "measured": j["peak_rss_mb"],
                      "measured_text": f"{j['peak_rss_mb']:.0f} MiB vs min peer {worst:.0f} MiB",
                      "met": j["peak_rss_mb"] <= worst, "by": f"{j['peak_rss_mb'] / worst:.2f}x"})
  return {"configs": [c.to_dict() for c in configs], "sections": sections,
          "targets": targets, "data": data}


# --------------------------------------------------------------------------
CONV_ALGOS = (("maml", False), ("maml", True), ("anil", False), ("protonet", False))


def conv_configs(quick: bool, meta_batch: int | None = None,
                 names: tuple[str, ...] | None = None) -> list[_configs.Config]:
  """The conv suite's configs: MAML, FOMAML, ANIL, ProtoNets at 5 and 20 ways, 1 shot.

  Args:
    quick: 5-way only and a meta-batch of 2 instead of 8.
    meta_batch: the meta-batch instead of that default (32 is Finn et al.'s).
    names: keep only the configs whose name starts with one of these, in this
      order (e.g. ``("conv-maml-5w",)``).

  Raises:
    ValueError: a name that matches no config.
  """
  tasks = meta_batch if meta_batch is not None else (2 if quick else 8)
  configs = [_configs.conv_config(algo, ways, tasks, first_order=fo)
             for ways in ((5,) if quick else (5, 20)) for algo, fo in CONV_ALGOS]
  return _pick(configs, names)


def conv(ctx: Ctx) -> dict:
  """The 4-block conv net under four algorithms: jmeta, plain JAX and learn2learn."""
  configs = conv_configs(ctx.quick, ctx.meta_batch, ctx.configs)
  peers = [p for p in ctx.available_peers() if p == "learn2learn"]
  peak = _peak(ctx)
  sections, data, ratios_all = _measure(ctx, configs, peers, peak, "conv")
  data["peak"] = peak
  sections.insert(0, {
      "title": "Conv nets: jmeta against hand-written JAX and learn2learn",
      "text": "Omniglot-shaped random episodes (28x28, 15 queries per class), the 4-block conv "
              "net (64 filters, batch statistics), one inner SGD step of 0.4 (ProtoNets: none), "
              "Adam 1e-3 outside. jmeta runs its CPU default (`task_map=\"auto\"`: a scan over "
              "image tasks, and `conv_impl=\"auto\"`: on a CPU `\"xla_vjp\"`, every derivative an "
              "NHWC/HWIO `lax.conv`); `jax` vmaps over tasks and `jax-scan` scans, "
              "both with `lax.conv_general_dilated`. Ratios are jmeta steps/s over the other's, "
              "paired by round, shown only after the meta-gradients agreed. A missing peer is "
              "reported below (`bash benchmarks/install_peers.sh`).",
      "table": _ratio_table(configs, data, ratios_all, ["jax", "jax-scan", "learn2learn"])})
  return {"configs": [c.to_dict() for c in configs], "sections": sections,
          "targets": [], "data": data}


# --------------------------------------------------------------------------
def memory(ctx: Ctx) -> dict:
  steps_list = [1, 10, 100] if ctx.quick else [1, 10, 100, 1000]
  peers = ctx.available_peers()
  impls = ["jmeta", "jmeta (remat)"] + peers
  data: dict[str, dict] = {i: {} for i in impls}
  for steps in steps_list:
    cfg = _configs.sinusoid_config(steps)
    for impl in impls:
      c = cfg.replace(remat=True) if impl == "jmeta (remat)" else cfg
      res = ctx.job({"kind": "single", "config": c.to_dict(),
                              "impl": "jmeta" if impl.startswith("jmeta") else impl, "steps": 1},
                             timeout=300 if ctx.quick else 900)
      data[impl][steps] = res
  headers = ["implementation"] + [f"{s} inner steps: peak RSS MiB (over import)" for s in steps_list] \
      + [f"{steps_list[-1]} steps: s/meta-step"]
  rows = []
  for impl in impls:
    row = [impl]
    for s in steps_list:
      r = data[impl][s]
      row.append(f"{r['peak_rss_mb']:.0f} ({r['peak_over_import_mb']:.0f})" if r.get("ok")
                 else f"failed: {r.get('error')}")
    last = data[impl][steps_list[-1]]
    row.append(last.get("steady_step_s") if last.get("ok") else None)
    rows.append(row)
  rows += ctx.missing_rows(len(headers))
  series = {i: (steps_list, [data[i][s].get("peak_rss_mb") for s in steps_list]) for i in impls}
  fig = _report.line_plot(os.path.join(ctx.out_dir, "memory_sinusoid.png"), series,
                          "Peak RSS vs inner steps (sinusoid MAML, 25 tasks, second order)",
                          "inner steps", "peak RSS (MiB)", logy=True)
  fig = fig  # may be None when nothing ran
  targets = []
  for s in steps_list:
    j = data["jmeta"][s]
    others = {p: data[p][s]["peak_rss_mb"] for p in peers if data[p][s].get("ok")}
    if j.get("ok") and others:
      m = min(others.values())
      targets.append({"name": f"sinusoid {s} inner steps: jmeta peak RSS <= every peer's",
                      "goal": "<= min peer", "measured": j["peak_rss_mb"],
                      "measured_text": f"{j['peak_rss_mb']:.0f} vs {m:.0f} MiB",
                      "met": j["peak_rss_mb"] <= m, "by": f"{j['peak_rss_mb'] / m:.2f}x"})
  text = ("Peak resident memory (`ru_maxrss`) of a fresh process per implementation and inner-step "
          "count: import, build, one compiled/warm-up meta-step and one more. In brackets: the peak "
          "minus the RSS right after importing the framework (what the meta-step itself costs). "
          "The sinusoid MAML config (25 tasks, 10 shots, second order). `jmeta (remat)` is "
          "`jmeta.maml(..., remat=True)` (a `jax.checkpoint` per inner step), the only memory "
          "option jmeta has today.")
  return {"configs": [_configs.sinusoid_config(s).to_dict() for s in steps_list],
          "sections": [{"title": "Memory: peak RSS against inner steps", "text": text,
                        "table": {"headers": headers, "rows": rows}, "figure": fig}],
          "targets": targets, "data": data}


# --------------------------------------------------------------------------
# Accuracy benchmarks written by others: module -> (quick args, full args, the
# markdown file it writes). "{out}" is this run's folder. None: not run in that
# mode (with the reason).
ACCURACY = {
    "benchmarks.experiments.sinusoid_table": (
        ["--iterations", "1000", "--shots", "10", "--algos", "maml", "--eval-tasks", "200",
         "--out", "{out}/sinusoid_table"], [], "sinusoid_table.md"),
    "benchmarks.omniglot_table": (
        None, [], "omniglot_table.md"),
}
QUICK_SKIP = {"benchmarks.omniglot_table": "skipped with --quick: it writes into "
                                           "benchmarks/results/ (no --out) and trains for minutes per cell"}


def accuracy(ctx: Ctx) -> dict:
  import time as _time
  here = os.path.dirname(os.path.abspath(__file__))
  found = {f"benchmarks.{os.path.relpath(p, here)[:-3].replace(os.sep, '.')}"
           for pattern in ("*_table.py", os.path.join("experiments", "*_table.py"))
           for p in glob.glob(os.path.join(here, pattern))}
  mods = list(dict.fromkeys(list(ACCURACY) + sorted(found)))
  rows, data, sections = [], {}, []
  for mod in mods:
    quick_args, full_args, md_name = ACCURACY.get(mod, ([], [], None))
    if importlib.util.find_spec(mod) is None:
      rows.append([mod, "missing", "the module does not exist yet", "-"])
      data[mod] = {"status": "missing"}
      continue
    args = quick_args if ctx.quick else full_args
    if args is None:
      why = QUICK_SKIP.get(mod, "not run in this mode")
      rows.append([mod, "not run", why, "-"])
      data[mod] = {"status": "not run", "why": why}
      continue
    args = [a.replace("{out}", ctx.out_dir) for a in args]
    cmd = [sys.executable, "-m", mod] + args
    ctx.log(f"  [accuracy] {' '.join(cmd[1:])}")
    t0 = _time.time()
    try:
      p = subprocess.run(cmd, cwd=_harness.REPO, capture_output=True, text=True,
                         timeout=1800 if ctx.quick else 4 * 3600,
                         env=dict(os.environ, PYTHONPATH=_harness.python_path()))
      status = "ok" if p.returncode == 0 else f"exit {p.returncode}"
      out = p.stdout.strip()
      err = p.stderr.strip().splitlines()[-3:] if p.returncode else []
    except subprocess.TimeoutExpired:
      status, out, err = "timed out", "", []
    rows.append([mod, status, " / ".join(err)[-300:] if err else "-", "python " + " ".join(cmd[1:])])
    data[mod] = {"status": status, "stdout": out[-20000:]}
    # The table the module wrote during this run (never an older one).
    written = None
    for d in ([a for a in args if a.startswith(ctx.out_dir)] + [_report.RESULTS_ROOT]):
      path = os.path.join(d, md_name) if md_name else None
      if path and os.path.exists(path) and os.path.getmtime(path) >= t0:
        written = path
        break
    if written:
      with open(written) as f:
        sections.append({"title": f"`{mod}` (from {os.path.relpath(written, _harness.REPO)})",
                         "text": f.read()})
    elif out:
      sections.append({"title": f"Output of `{mod}`", "text": "```\n" + out[-6000:] + "\n```"})
  sections.insert(0, {"title": "Accuracy benchmarks",
                      "text": "Each accuracy benchmark is its own module, run in a subprocess "
                              "(small settings with `--quick`). A missing module is reported, "
                              "not guessed; tables are shown only if written during this run.",
                      "table": {"headers": ["module", "status", "error / note", "command"],
                                "rows": rows}})
  return {"configs": [], "sections": sections, "targets": [], "data": data}


# --------------------------------------------------------------------------
def scaling(ctx: Ctx) -> dict:
  q = ctx.quick
  sizes = [1, 4, 16, 64] if q else [1, 2, 4, 8, 16, 32, 64, 128, 256]
  peers = [p for p in ctx.available_peers() if p in ("learn2learn", "torch.func")]
  impls = ["jmeta"] + peers
  data: dict[str, Any] = {"meta_batch": {}, "devices": {}}
  for n in sizes:
    cfg = _configs.sinusoid_config(5, tasks=n)
    data["meta_batch"][n] = ctx.job(
        {"kind": "speed", "config": cfg.to_dict(), "impls": impls, "rounds": 3,
         "round_s": 0.2 if q else 0.5, "budget_s": 60, "n_batches": 2},
        timeout=900)
  rows = []
  series = {}
  for impl in impls:
    ys = []
    for n in sizes:
      r = data["meta_batch"][n]
      rates = ((r.get("impls") or {}).get(impl) or {}).get("rates") if r.get("ok") else None
      ys.append(n * _stats.median(rates) if rates else None)
    series[impl] = (sizes, ys)
    rows.append([impl] + [f"{y:.4g}" if y else "n/a" for y in ys])
  headers = ["implementation"] + [f"mb {n}: tasks/s" for n in sizes]
  fig1 = _report.line_plot(os.path.join(ctx.out_dir, "scaling_meta_batch.png"), series,
                           "Tasks/s vs meta-batch (sinusoid MAML, 5 inner steps)",
                           "meta-batch (tasks per meta-step)", "tasks per second")
  dev_counts = [1, 2, 4] if q else [1, 2, 4, 8]
  mb = 64
  for d in dev_counts:
    cfg = _configs.sinusoid_config(5, tasks=mb)
    data["devices"][d] = ctx.job(
        {"kind": "devices", "config": cfg.to_dict(), "rounds": 3, "calls": 10 if q else 30},
        timeout=600, env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={d}"})
  drows, dys = [], []
  for d in dev_counts:
    r = data["devices"][d]
    rate = _stats.median(r["rates"]) if r.get("ok") else None
    dys.append(rate)
    drows.append([d, r.get("devices") if r.get("ok") else f"failed: {r.get('error')}",
                  rate, r.get("first_call_s")])
  fig2 = _report.line_plot(os.path.join(ctx.out_dir, "scaling_devices.png"),
                           {"jmeta": (dev_counts, dys)},
                           f"jmeta meta-steps/s vs virtual CPU devices (meta-batch {mb})",
                           "XLA host devices", "meta-steps/s", logy=False)
  return {"configs": [_configs.sinusoid_config(5, tasks=n).to_dict() for n in sizes],
          "sections": [
              {"title": "Scaling: meta-batch", "text": "Sinusoid MAML (5 inner steps), tasks "
               "processed per second as the meta-batch grows; implementations interleaved in one "
               "process per size.", "table": {"headers": headers, "rows": rows}, "figure": fig1},
              {"title": "Scaling: virtual devices", "text":
               f"jmeta with the task batch (meta-batch {mb}) sharded over N XLA host devices "
               "(`XLA_FLAGS=--xla_force_host_platform_device_count=N`, a fresh process each), "
               "`jax.sharding.NamedSharding` on the task axis, the unchanged `make_meta_step`. "
               "Virtual devices share this machine's cores, so this measures partitioning "
               "overhead and correctness of sharded execution, not a speed-up.",
               "table": {"headers": ["requested", "devices seen", "meta-steps/s", "first call s"],
                         "rows": drows}, "figure": fig2}],
          "targets": [], "data": data}


# What README figure each suite produces (``python -m benchmarks list``).
SUITE_FIGURES = {
    "speed": "README 'Speed and memory against the peers': the sinusoid and Omniglot table "
             "(jmeta against the peers and against hand-written JAX, peak RSS)",
    "conv": "README 'Speed and memory against the peers': the conv-net table (jmeta/learn2learn "
            "and jmeta/jax per algorithm at 5 and 20 ways, meta-batch 8) and, with --configs "
            "conv-maml-5w --meta-batch 32, the meta-batch 32 line",
    "memory": "none: peak RSS against 1-1000 inner steps, jmeta beside the peers (the README's "
              "remat table is benchmarks.experiments.remat_memory)",
    "accuracy": "README 'Sinusoid regression' and 'Omniglot' tables (runs "
                "benchmarks.experiments.sinusoid_table and benchmarks.omniglot_table)",
    "scaling": "none: tasks/s against meta-batch 1-256 and virtual device counts",
}
SUITES = {"speed": speed, "conv": conv, "memory": memory, "accuracy": accuracy,
          "scaling": scaling}
# The suites whose --configs/--meta-batch choose among configs.
SUITE_CONFIGS = {"speed": speed_configs, "conv": conv_configs}
