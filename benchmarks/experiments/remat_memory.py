"""Peak memory and time of a second-order meta-gradient against the number of inner steps.

MAML on 10-shot sinusoid regression (the 1-40-40-1 MLP of Finn et al.), 25
tasks per meta-batch, float32, SGD inner loop, for 1, 10, 100 and 1,000 inner
steps with each remat policy (``False``, ``True``, ``"sqrt"``, ``"log"``), and
iMAML (implicit gradient, its memory does not depend on the unroll) when
``jmeta.algorithms.imaml`` exists. Memory is XLA's temporary buffer size of the
compiled meta-gradient (``compile().memory_analysis()``), the peak of the
program's live intermediates; time is the median of ``--repeats`` steady-state
calls (``block_until_ready``), compile time apart.

    python -m benchmarks.experiments.remat_memory                   # the full table
    python -m benchmarks.experiments.remat_memory --steps 1,10 --policies none,log --repeats 3
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jmeta

README_FIGURE = ("README 'Speed and memory against the peers': the long-inner-loops table, XLA temporary "
                 'memory per remat policy (printed)')

POLICIES = {"none": False, "step": True, "sqrt": "sqrt", "log": "log"}


def _imaml():
  """``jmeta.imaml`` if the installed jmeta has it, else ``None``."""
  return getattr(jmeta, "imaml", None)


def _learner(name: str, loss_fn, steps: int):
  if name == "imaml":
    imaml = _imaml()
    return imaml(loss_fn, optax.sgd(0.01), steps=steps, lam=1.0, cg_steps=5, on_cg_failure="ignore")
  return jmeta.maml(loss_fn, optax.sgd(0.01), steps=steps, remat=POLICIES[name])


def measure(name: str, steps: int, *, meta_batch: int, repeats: int) -> dict[str, float]:
  """Compiles and times the mean meta-gradient over a task batch."""
  model = jmeta.MLP()
  params = model.init(jax.random.key(0), jnp.zeros((1, 1)))
  tasks = jmeta.sinusoid(shots=10, queries=10).sample_batch(jax.random.key(1), meta_batch)
  learner = _learner(name, jmeta.mse_loss(model.apply), steps)
  fn = jax.jit(lambda p, t: jmeta.mean_over_tasks(lambda task: learner.task_grad(p, task), t)[0])
  t0 = time.perf_counter()
  compiled = fn.lower(params, tasks).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  jax.block_until_ready(compiled(params, tasks))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, tasks))
    times.append(time.perf_counter() - t0)
  return {"temp_mb": mem.temp_size_in_bytes / 1e6, "compile_s": compile_s,
          "step_ms": 1e3 * float(np.median(times))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", default="1,10,100,1000", help="inner steps, comma-separated")
  parser.add_argument("--policies", default="none,step,sqrt,log,imaml",
                      help="remat policies (none, step, sqrt, log) and imaml")
  parser.add_argument("--meta-batch", type=int, default=25)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  steps = [int(s) for s in args.steps.split(",")]
  names = [n for n in args.policies.split(",")
           if n != "imaml" or _imaml() is not None]
  print(f"jax {jax.__version__}, {jax.default_backend()}, {jax.device_count()} device(s);"
        f" MAML sinusoid MLP 1-40-40-1, {args.meta_batch} tasks, float32")
  print(f"{'policy':>7} {'steps':>6} {'temp MB':>9} {'step ms':>9} {'compile s':>10}")
  table = {}
  for name in names:
    for n in steps:
      r = measure(name, n, meta_batch=args.meta_batch, repeats=args.repeats)
      table[name, n] = r
      print(f"{name:>7} {n:>6} {r['temp_mb']:>9.2f} {r['step_ms']:>9.1f} {r['compile_s']:>10.1f}",
            flush=True)
  for name in names:
    if (name, 10) in table and (name, 1000) in table:
      print(f"{name}: memory(1000 steps) / memory(10 steps) ="
            f" {table[name, 1000]['temp_mb'] / table[name, 10]['temp_mb']:.2f}")


if __name__ == "__main__":
  main()
