"""A conv net's per-task cost inside the meta-step against the same task compiled on its own.

Second-order MAML, 5-way 1-shot with 15 queries per class, the 4-block conv net
(64 filters, 28x28 images), one inner SGD step of 0.4, Adam outer step. For each
``--conv-impl`` it times, in alternating rounds in one process: the meta-step
``jmeta.make_meta_step(...).update`` on ``--meta-batch`` tasks (CPU default:
``lax.scan`` over the tasks) and ``--meta-batch`` separate calls of one task's
meta-gradient jitted alone. It prints wall and process-CPU seconds (the CPU
seconds are the steadier figure on a shared machine) and the ratio. The first
call (compilation included) is timed apart.

Usage::

  python -m benchmarks.experiments.conv_task_map                       # xla_vjp, matmul
  python -m benchmarks.experiments.conv_task_map --conv-impl xla_vjp matmul xla --meta-batch 8
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import jmeta

README_FIGURE = "README 'Conv nets on CPU': per-task cost in the meta-step vs standalone (printed)"


def _cpu() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _timed(fn) -> tuple[float, float]:
  c, w = _cpu(), time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - w, _cpu() - c


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--conv-impl", nargs="+", default=["xla_vjp", "matmul"])
  p.add_argument("--meta-batch", type=int, default=8)
  p.add_argument("--rounds", type=int, default=3)
  args = p.parse_args()
  mb, ways, queries = args.meta_batch, 5, 15
  kx, kq = jax.random.split(jax.random.key(0))
  tasks = jmeta.Task(jax.random.normal(kx, (mb, ways, 28, 28, 1)),
                     jnp.tile(jnp.arange(ways), (mb, 1)),
                     jax.random.normal(kq, (mb, ways * queries, 28, 28, 1)),
                     jnp.tile(jnp.arange(ways).repeat(queries), (mb, 1)))
  one_tasks = [jax.tree.map(lambda a, i=i: a[i], tasks) for i in range(mb)]
  runs = {}
  for impl in args.conv_impl:
    net = jmeta.ConvNet(ways=ways, conv_impl=impl)
    learner = jmeta.maml(jmeta.cross_entropy_loss(net.apply), inner_opt=optax.sgd(0.4), steps=1)
    step = jmeta.make_meta_step(learner, optax.adam(1e-3))
    state = step.init(jax.random.key(2), net.init(jax.random.key(1), tasks.support_x[0]))
    one = jax.jit(lambda mp, t, learner=learner: learner.task_grad(mp, t, 0))
    first_step = _timed(lambda: step.update(state, tasks))
    first_one = _timed(lambda: one(state.meta_params, one_tasks[0]))
    runs[impl] = (step, state, one, {"meta-step": [], "standalone": []})
    print(f"{impl}: first call (compile + run): meta-step {first_step[0]:.1f} s, one task"
          f" {first_one[0]:.1f} s", flush=True)
  for _ in range(args.rounds):
    for impl, (step, state, one, res) in runs.items():
      res["meta-step"].append(_timed(lambda: step.update(state, tasks)))
      res["standalone"].append(_timed(
          lambda: [one(state.meta_params, t) for t in one_tasks]))
  print(f"\njax {jax.__version__}, backend {jax.default_backend()}, meta-batch {mb}, load average"
        f" {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
  print(f"{'conv_impl':10s} {'form':22s} {'wall s':>8s} {'CPU s':>8s}")
  for impl, (_, _, _, res) in runs.items():
    for form, label in (("meta-step", f"meta-step ({mb} tasks)"), ("standalone", f"{mb} x one task")):
      wall = statistics.median(x[0] for x in res[form])
      cpu = statistics.median(x[1] for x in res[form])
      print(f"{impl:10s} {label:22s} {wall:8.2f} {cpu:8.2f}")
    ratio = (statistics.median(x[1] for x in res["meta-step"])
             / statistics.median(x[1] for x in res["standalone"]))
    print(f"{impl:10s} {'meta-step / standalone':22s} {'':>8s} {ratio:8.2f}x (CPU)")


if __name__ == "__main__":
  main()
