"""Speed of conv-net meta-steps on this machine (issue 7).

Measures meta-steps per second (median over repeats; compile time apart),
peak resident memory, GFLOP per step (XLA cost analysis) and the fraction of
the machine's float32 matmul peak, for the 4-block Omniglot conv net
(``jmeta.models.ConvNet``) under MAML (second and first order), ANIL and
ProtoNets, and, when ``learn2learn`` and ``torch`` are importable, the
learn2learn equivalents measured A/B/A/B in the same run.

Each variant runs in a fresh subprocess so that its peak RSS is its own and
XLA flags can differ per variant.

Usage::

  python benchmarks/conv_speed.py --help
  python benchmarks/conv_speed.py                       # the default table
  python benchmarks/conv_speed.py --algo maml2 --mode scan vmap chunked:8
  python benchmarks/conv_speed.py --l2l --ways 5 --algo maml2

A harness can call :func:`measure` (in-process) or :func:`measure_isolated`
(in a subprocess) with a :class:`Config` and gets a ``dict`` back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
  sys.path.insert(0, _ROOT)

ALGOS = ("maml2", "maml1", "anil", "protonet")


@dataclasses.dataclass
class Config:
  """One benchmark variant.

  Attributes:
    algo: ``maml2`` | ``maml1`` | ``anil`` | ``protonet``.
    framework: ``jax`` or ``l2l`` (learn2learn + torch).
    ways, shots, queries: the episode (queries per class).
    meta_batch: tasks per meta-step.
    mode: how the per-task losses map over the task batch (jax only):
      ``vmap`` (grad of the vmapped mean loss: shared weights stay shared),
      ``vmap_pertask`` (vmap of per-task value_and_grad, then the mean, like
      ``jmeta.mean_over_tasks(mode="vmap")``), ``scan`` (one task at a time,
      gradients accumulated), ``chunked:C`` (scan over chunks of C tasks,
      each chunk ``vmap``), or ``jmeta`` / ``jmeta:<mode>[:C]`` (the
      library's ``make_meta_step``, if present).
    conv_impl: ``auto`` | ``matmul`` | ``xla``.
    hidden: conv filters; image: image side (28 for Omniglot).
    inner_lr: inner SGD step size; inner_steps: inner steps.
    repeats: timed meta-steps (at most); budget_s: stop timing after this.
    xla_flags: extra ``XLA_FLAGS`` for the subprocess.
    seed: PRNG seed.
  """

  algo: str = "maml2"
  framework: str = "jax"
  ways: int = 5
  shots: int = 1
  queries: int = 15
  meta_batch: int = 32
  mode: str = "scan"
  conv_impl: str = "matmul"
  hidden: int = 64
  image: int = 28
  inner_lr: float = 0.4
  inner_steps: int = 1
  repeats: int = 7
  budget_s: float = 60.0
  xla_flags: str = ""
  seed: int = 0
  conv_bias: Optional[bool] = None


# ----------------------------------------------------------------------------
# Measurement helpers.


def peak_rss_mb() -> float:
  """Peak resident set size of this process so far, in MB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed_repeats(step: Callable[[], Any], cfg: Config):
  """Wall and process-CPU seconds of up to ``cfg.repeats`` calls of ``step``."""
  times, cpu = [], []
  start = time.perf_counter()
  for _ in range(max(1, cfg.repeats)):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
    if time.perf_counter() - start > cfg.budget_s:
      break
  return times, cpu


def _load() -> float:
  try:
    return os.getloadavg()[0]
  except OSError:  # pragma: no cover
    return float("nan")


_PEAK_CACHE: dict[str, float] = {}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  """Measured float32 matmul throughput of jax on this machine (GFLOP/s)."""
  if "peak" in _PEAK_CACHE:
    return _PEAK_CACHE["peak"]
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  _PEAK_CACHE["peak"] = 2.0 * n**3 / best / 1e9
  return _PEAK_CACHE["peak"]


# ----------------------------------------------------------------------------
# JAX meta-steps, written by hand (no dependence on jmeta's learners).


def _episode(cfg: Config, key):
  import jax
  import jax.numpy as jnp
  n_s, n_q = cfg.ways * cfg.shots, cfg.ways * cfg.queries
  k1, k2 = jax.random.split(key)
  shape = (cfg.meta_batch,)
  sx = jax.random.normal(k1, shape + (n_s, cfg.image, cfg.image, 1), jnp.float32)
  qx = jax.random.normal(k2, shape + (n_q, cfg.image, cfg.image, 1), jnp.float32)
  sy = jnp.broadcast_to(jnp.repeat(jnp.arange(cfg.ways), cfg.shots), shape + (n_s,))
  qy = jnp.broadcast_to(jnp.repeat(jnp.arange(cfg.ways), cfg.queries), shape + (n_q,))
  return sx, sy, qx, qy


def _xent(logits, labels):
  import jax
  import jax.numpy as jnp
  # One-hot rather than indexing: the transpose of a gather is a scatter.
  logp = jax.nn.log_softmax(logits)
  onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logp.dtype)
  return -jnp.sum(logp * onehot) / labels.shape[0]


def _per_task_loss_fn(cfg: Config, net) -> Callable:
  """``loss(params, sx, sy, qx, qy) -> query loss after adaptation``."""
  import jax
  import jax.numpy as jnp

  def model_loss(p, x, y):
    return _xent(net.apply(p, x), y)

  if cfg.algo in ("maml1", "maml2"):

    def task_loss(params, sx, sy, qx, qy):
      p = params
      for _ in range(cfg.inner_steps):
        g = jax.grad(model_loss)(p, sx, sy)
        if cfg.algo == "maml1":
          g = jax.lax.stop_gradient(g)
        p = jax.tree.map(lambda w, d: w - cfg.inner_lr * d, p, g)
      return model_loss(p, qx, qy)

    return task_loss

  if cfg.algo == "anil":

    def head_loss(head, f, y):
      logits = f @ head["kernel"] + head["bias"][None, :]
      return _xent(logits, y)

    def task_loss(params, sx, sy, qx, qy):
      body = {"params": {"body": params["params"]["body"]}}
      fs = net.apply(body, sx, method=net.features)
      fq = net.apply(body, qx, method=net.features)
      head = params["params"]["head"]
      for _ in range(cfg.inner_steps):
        g = jax.grad(head_loss)(head, fs, sy)
        head = jax.tree.map(lambda w, d: w - cfg.inner_lr * d, head, g)
      return head_loss(head, fq, qy)

    return task_loss

  if cfg.algo == "protonet":

    def task_loss(params, sx, sy, qx, qy):
      fs = net.apply(params, sx, method=net.features)
      fq = net.apply(params, qx, method=net.features)
      onehot = jax.nn.one_hot(sy, cfg.ways, dtype=fs.dtype)
      protos = (onehot.T @ fs) / jnp.sum(onehot, axis=0)[:, None]
      d = (jnp.sum(fq * fq, axis=1)[:, None] - 2.0 * fq @ protos.T
           + jnp.sum(protos * protos, axis=1)[None, :])
      return _xent(-d, qy)

    return task_loss

  raise ValueError(f"unknown algo {cfg.algo!r}")


def _meta_grad_fn(cfg: Config, task_loss: Callable) -> Callable:
  """``(params, sx, sy, qx, qy) -> (mean loss, mean meta-gradient)``."""
  import jax
  import jax.numpy as jnp

  mode = cfg.mode
  b = cfg.meta_batch
  vg = jax.value_and_grad(task_loss)

  def mean_loss(params, *tasks):
    return jnp.mean(jax.vmap(task_loss, in_axes=(None, 0, 0, 0, 0))(params, *tasks))

  if mode == "vmap":
    return jax.value_and_grad(mean_loss)

  if mode == "vmap_pertask":

    def f(params, *tasks):
      ls, gs = jax.vmap(vg, in_axes=(None, 0, 0, 0, 0))(params, *tasks)
      return jnp.mean(ls), jax.tree.map(lambda g: jnp.mean(g, axis=0), gs)

    return f

  if mode == "scan" or mode.startswith("chunked:"):
    c = 1 if mode == "scan" else int(mode.split(":")[1])
    if b % c:
      raise ValueError(f"chunk {c} must divide meta_batch {b}")
    item_vg = vg if c == 1 else jax.value_and_grad(mean_loss)

    def f(params, *tasks):
      chunks = [t.reshape((b // c, c) + t.shape[1:]) for t in tasks]
      if c == 1:
        chunks = [t[:, 0] for t in chunks]
      zero = jax.tree.map(jnp.zeros_like, params)

      def body(carry, item):
        l_acc, g_acc = carry
        l, g = item_vg(params, *item)
        return (l_acc + l, jax.tree.map(jnp.add, g_acc, g)), None

      (l, g), _ = jax.lax.scan(body, (jnp.zeros((), jnp.float32), zero), chunks)
      scale = c / b
      return l * scale, jax.tree.map(lambda v: v * scale, g)

    return f

  raise ValueError(f"unknown mode {mode!r}")


def _jax_step(cfg: Config):
  """Builds ``(step, args)`` with ``step(*args) -> (params, opt_state, loss)``."""
  import jax
  import optax
  from jmeta.models._conv import ConvNet

  net = ConvNet(ways=cfg.ways, hidden=cfg.hidden, conv_impl=cfg.conv_impl,
                conv_bias=cfg.conv_bias)
  key = jax.random.PRNGKey(cfg.seed)
  tasks = _episode(cfg, key)
  params = net.init(key, tasks[0][0])
  opt = optax.adam(1e-3)
  opt_state = opt.init(params)

  if cfg.mode.startswith("jmeta"):
    return _jmeta_step(cfg, net, params, tasks)

  grad_fn = _meta_grad_fn(cfg, _per_task_loss_fn(cfg, net))

  def step(params, opt_state, *tasks):
    loss, grads = grad_fn(params, *tasks)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1)), (params, opt_state) + tuple(tasks)


def _jmeta_step(cfg: Config, net, params, tasks):
  """The library's own make_meta_step with this module (``mode=jmeta[:m[:c]]``)."""
  import jax
  import optax
  import jmeta

  parts = cfg.mode.split(":")
  kwargs = {}
  if len(parts) > 1:
    kwargs["task_map"] = parts[1]
  if len(parts) > 2:
    kwargs["chunk_size"] = int(parts[2])
  loss_fn = lambda p, x, y: _xent(net.apply(p, x), y)
  if cfg.algo in ("maml1", "maml2"):
    learner = jmeta.maml(loss_fn, optax.sgd(cfg.inner_lr), steps=cfg.inner_steps,
                         first_order=cfg.algo == "maml1", metrics_before=False)
  elif cfg.algo == "anil":
    learner = jmeta.anil(loss_fn, optax.sgd(cfg.inner_lr), steps=cfg.inner_steps,
                         adapt=lambda p: jmeta.path_mask(p, "head"), metrics_before=False)
  elif cfg.algo == "protonet":
    from jmeta.models._conv import ConvBody
    body = ConvBody(hidden=cfg.hidden, conv_impl=cfg.conv_impl, conv_bias=cfg.conv_bias)
    params = body.init(jax.random.PRNGKey(cfg.seed), tasks[0][0])
    learner = jmeta.protonet(body.apply, ways=cfg.ways)
  else:
    raise ValueError(f"unknown algo {cfg.algo!r}")
  ms = jmeta.make_meta_step(learner, optax.adam(1e-3), **kwargs)
  state = ms.init(jax.random.PRNGKey(cfg.seed), params)
  batch = jmeta.Task(*tasks)
  fn = jax.jit(ms.step_fn, donate_argnums=(0,))

  def step(state, batch):
    return fn(state, batch)

  return step, (state, batch)


def measure(cfg: Config) -> dict:
  """Measures one configuration in this process and returns a result dict."""
  if cfg.framework == "l2l":
    return _measure_l2l(cfg)
  import jax

  out = dict(dataclasses.asdict(cfg))
  rss0 = peak_rss_mb()
  step, args = _jax_step(cfg)
  t0 = time.perf_counter()
  lowered = step.lower(*args) if hasattr(step, "lower") else jax.jit(step).lower(*args)
  compiled = lowered.compile()
  out["compile_s"] = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = float((cost or {}).get("flops", float("nan")))
  # XLA's cost analysis counts a while loop's body once: scale by the trips.
  parts = cfg.mode.split(":")
  if parts[0] == "jmeta":
    parts = parts[1:]
  if parts[:1] == ["scan"]:
    flops *= cfg.meta_batch
  elif parts[:1] == ["chunked"] and len(parts) > 1:
    flops *= cfg.meta_batch // int(parts[1])
  out["gflop_per_step"] = flops / 1e9

  state = list(args)

  def one():
    params, opt_state, loss = compiled(*state)
    jax.block_until_ready(loss)
    state[0], state[1] = params, opt_state

  if cfg.mode.startswith("jmeta"):

    def one():  # noqa: F811
      new_state, metrics = compiled(*state)
      jax.block_until_ready((new_state, metrics))
      state[0] = new_state

  t0 = time.perf_counter()
  one()  # warm-up (first run allocates)
  out["first_step_s"] = time.perf_counter() - t0
  out["load_before"] = _load()
  times, cpu = _timed_repeats(one, cfg)
  out["load_after"] = _load()
  med = statistics.median(times)
  out["cpu_s_per_step"] = statistics.median(cpu)
  out["step_s"] = med
  out["steps_per_s"] = 1.0 / med
  out["times"] = times
  out["peak_rss_mb"] = peak_rss_mb()
  out["base_rss_mb"] = rss0
  peak = matmul_peak_gflops()
  out["matmul_peak_gflops"] = peak
  out["gflops_achieved"] = out["gflop_per_step"] / med
  out["frac_of_peak"] = out["gflops_achieved"] / peak
  return out


# ----------------------------------------------------------------------------
# learn2learn equivalents (run only when torch and learn2learn import).


def l2l_available() -> bool:
  try:
    _import_l2l()
  except Exception as e:  # pragma: no cover - depends on the environment
    print(f"learn2learn unavailable: {type(e).__name__}: {e}"[:300])
    return False
  return True


def _import_l2l():
  """learn2learn and torch, through the harness's torchvision shim."""
  from benchmarks.peers._compat import import_peer, setup_torch
  import torch
  setup_torch(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
  return import_peer("learn2learn"), torch


def _measure_l2l(cfg: Config) -> dict:
  l2l, torch = _import_l2l()

  torch.manual_seed(cfg.seed)
  out = dict(dataclasses.asdict(cfg))
  out["torch_threads"] = torch.get_num_threads()
  n_s, n_q = cfg.ways * cfg.shots, cfg.ways * cfg.queries
  b = cfg.meta_batch
  sx = torch.randn(b, n_s, 1, cfg.image, cfg.image)
  qx = torch.randn(b, n_q, 1, cfg.image, cfg.image)
  sy = torch.arange(cfg.ways).repeat_interleave(cfg.shots).expand(b, n_s)
  qy = torch.arange(cfg.ways).repeat_interleave(cfg.queries).expand(b, n_q)
  xent = torch.nn.functional.cross_entropy
  model = l2l.vision.models.OmniglotCNN(output_size=cfg.ways,
                                        hidden_size=cfg.hidden, layers=4)

  if cfg.algo in ("maml1", "maml2"):
    maml = l2l.algorithms.MAML(model, lr=cfg.inner_lr,
                               first_order=cfg.algo == "maml1")
    opt = torch.optim.Adam(maml.parameters(), 1e-3)

    def step():
      opt.zero_grad()
      for t in range(b):
        learner = maml.clone()
        for _ in range(cfg.inner_steps):
          learner.adapt(xent(learner(sx[t]), sy[t]))
        (xent(learner(qx[t]), qy[t]) / b).backward()
      opt.step()

  elif cfg.algo == "anil":
    body, head = model.features, l2l.algorithms.MAML(model.classifier,
                                                      lr=cfg.inner_lr)
    opt = torch.optim.Adam(list(body.parameters()) + list(head.parameters()),
                           1e-3)

    def step():
      opt.zero_grad()
      for t in range(b):
        fs, fq = body(sx[t]), body(qx[t])
        learner = head.clone()
        for _ in range(cfg.inner_steps):
          learner.adapt(xent(learner(fs), sy[t]))
        (xent(learner(fq), qy[t]) / b).backward()
      opt.step()

  elif cfg.algo == "protonet":
    body = model.features
    opt = torch.optim.Adam(body.parameters(), 1e-3)

    def step():
      # As learn2learn's ProtoNet example: one forward over the episode's
      # support and query images together (transductive batch statistics,
      # like jmeta.protonet), prototypes, negative squared distances.
      opt.zero_grad()
      for t in range(b):
        z = body(torch.cat([sx[t], qx[t]]))
        fs, fq = z[:n_s], z[n_s:]
        onehot = torch.nn.functional.one_hot(sy[t], cfg.ways).float()
        protos = onehot.T @ fs / onehot.sum(0)[:, None]
        logits = -torch.cdist(fq, protos) ** 2
        (xent(logits, qy[t]) / b).backward()
      opt.step()

  else:
    raise ValueError(cfg.algo)

  t0 = time.perf_counter()
  step()
  out["first_step_s"] = time.perf_counter() - t0
  out["compile_s"] = 0.0
  out["load_before"] = _load()
  times, cpu = _timed_repeats(step, cfg)
  out["load_after"] = _load()
  med = statistics.median(times)
  out.update(step_s=med, cpu_s_per_step=statistics.median(cpu), steps_per_s=1.0 / med, times=times,
             peak_rss_mb=peak_rss_mb(), gflop_per_step=float("nan"),
             frac_of_peak=float("nan"))
  return out


# ----------------------------------------------------------------------------
# Subprocess isolation and the command line.


def measure_isolated(cfg: Config, timeout_s: float = 1800.0) -> dict:
  """Runs :func:`measure` in a fresh Python process (own peak RSS, own flags).

  Never raises on a slow machine or a failed variant: the returned dict has an
  ``error`` entry instead.
  """
  env = dict(os.environ)
  if cfg.xla_flags:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + cfg.xla_flags).strip()
  cmd = [sys.executable, os.path.abspath(__file__), "--_child",
         json.dumps(dataclasses.asdict(cfg))]
  try:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return dict(dataclasses.asdict(cfg), error=f"timeout after {timeout_s}s")
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):])
  return dict(dataclasses.asdict(cfg),
              error=(proc.stderr or proc.stdout)[-2000:])


def _fmt(r: dict) -> str:
  if "error" in r:
    err = r["error"].strip().splitlines()[-1] if r["error"].strip() else "?"
    return (f"{r['framework']:4s} {r['algo']:8s} {r['ways']:3d}-way "
            f"{r['mode']:14s} {r['conv_impl']:6s} ERROR {err}")
  frac = r.get("frac_of_peak", float("nan"))
  return (f"{r['framework']:4s} {r['algo']:8s} {r['ways']:3d}-way "
          f"{r['mode'] if r['framework'] == 'jax' else '-':14s} "
          f"{r['conv_impl'] if r['framework'] == 'jax' else '-':6s} "
          f"{r['steps_per_s']:7.3f} steps/s  cpu {r['cpu_s_per_step']:6.2f}s/step  "
          f"compile {r['compile_s']:6.1f}s  "
          f"peak {r['peak_rss_mb'] / 1024:5.2f} GB  "
          f"{r['gflop_per_step']:7.1f} GFLOP  {100 * frac:5.1f}% of peak"
          + f"  load {r['load_before']:.1f}-{r['load_after']:.1f}"
          + (f"  [{r['xla_flags']}]" if r.get("xla_flags") else ""))


def main(argv: Optional[list[str]] = None) -> list[dict]:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--algo", nargs="+", default=list(ALGOS), choices=ALGOS)
  p.add_argument("--ways", nargs="+", type=int, default=[5, 20])
  p.add_argument("--mode", nargs="+", default=["scan"],
                 help="vmap | vmap_pertask | scan | chunked:C | jmeta[:mode[:C]]")
  p.add_argument("--conv-impl", nargs="+", default=["matmul"],
                 choices=["auto", "matmul", "matmul_vjp", "xla", "xla_vjp"])
  p.add_argument("--meta-batch", type=int, default=32)
  p.add_argument("--queries", type=int, default=15)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--budget-s", type=float, default=60.0,
                 help="stop timing a variant after this many seconds")
  p.add_argument("--xla-flags", nargs="+", default=[""])
  p.add_argument("--l2l", action="store_true",
                 help="also measure learn2learn, alternating A/B/A/B")
  p.add_argument("--rounds", type=int, default=2,
                 help="A/B rounds when --l2l is given")
  p.add_argument("--json", help="write all results to this file")
  p.add_argument("--_child", help=argparse.SUPPRESS)
  args = p.parse_args(argv)

  if args._child:
    res = measure(Config(**json.loads(args._child)))
    print("RESULT " + json.dumps(res), flush=True)
    return [res]

  results = []
  use_l2l = args.l2l and l2l_available()
  if args.l2l and not use_l2l:
    print("learn2learn/torch not importable: skipping the comparison")
  for algo in args.algo:
    for ways in args.ways:
      modes = args.mode
      jax_cfgs = [Config(algo=algo, ways=ways, mode=m, conv_impl=c,
                         meta_batch=args.meta_batch, queries=args.queries,
                         repeats=args.repeats, budget_s=args.budget_s,
                         xla_flags=f)
                  for m in modes for c in args.conv_impl for f in args.xla_flags]
      rounds = args.rounds if use_l2l else 1
      l2l_res, jax_best = [], []
      for _ in range(rounds):
        for cfg in jax_cfgs:
          r = measure_isolated(cfg)
          print(_fmt(r), flush=True)
          results.append(r)
          if "error" not in r:
            jax_best.append(r["steps_per_s"])
        if use_l2l:
          r = measure_isolated(Config(algo=algo, ways=ways, framework="l2l",
                                      meta_batch=args.meta_batch,
                                      queries=args.queries,
                                      repeats=args.repeats,
                                      budget_s=args.budget_s))
          print(_fmt(r), flush=True)
          results.append(r)
          if "error" not in r:
            l2l_res.append(r["steps_per_s"])
      if l2l_res and jax_best:
        ratio = statistics.median(jax_best) / statistics.median(l2l_res)
        print(f"  -> {algo} {ways}-way: jax/learn2learn median ratio "
              f"{ratio:.2f}x", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)
  return results


if __name__ == "__main__":
  main()
