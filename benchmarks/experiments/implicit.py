"""iMAML vs MAML on sinusoid regression: accuracy, speed and meta-gradient memory.

Prints, for each learner:
  * meta-test MSE after adaptation (mean and 95% CI over held-out tasks) after
    a short meta-training run,
  * steady-state meta-steps per second (compile time apart, ``block_until_ready``),
  * the XLA temp memory of the compiled meta-step (``memory_analysis()``) for
    1, 10 and 100 inner steps: it grows with the steps for MAML (backprop
    through the unroll) and stays flat for iMAML (implicit gradient).

Usage::

  python -m benchmarks.experiments.implicit                  # default (~2-3 min on 2 CPU cores)
  python -m benchmarks.experiments.implicit --iterations 2000 --meta-batch 25
  python -m benchmarks.experiments.implicit --only memory
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jmeta
from jmeta import imaml

README_FIGURE = ("README 'Beyond MAML': iMAML against MAML, accuracy, speed and meta-gradient memory "
                 '(printed)')


def learners(loss, steps, lam, inner_lr, cg_steps, cg_tol):
  return {
      f"maml ({steps} steps)": jmeta.maml(loss, optax.sgd(inner_lr), steps=steps),
      f"imaml ({steps} steps, lam={lam}, cg={cg_steps})": imaml(
          loss, optax.sgd(inner_lr), steps=steps, lam=lam, cg_steps=cg_steps, cg_tol=cg_tol),
  }


def speed(step, state, tasks, repeats):
  t0 = time.perf_counter()
  s, m = step.update(state, tasks)
  jax.block_until_ready(s)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(repeats):
    s, m = step.update(s, tasks)
  jax.block_until_ready(s)
  return compile_s, repeats / (time.perf_counter() - t0)


def temp_bytes(step, state, tasks):
  compiled = jax.jit(step.step_fn).lower(state, tasks).compile()
  mem = compiled.memory_analysis()
  return None if mem is None else mem.temp_size_in_bytes


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--iterations", type=int, default=1000)
  p.add_argument("--meta-batch", type=int, default=10)
  p.add_argument("--shots", type=int, default=10)
  p.add_argument("--steps", type=int, default=10, help="inner steps for training/evaluation")
  p.add_argument("--inner-lr", type=float, default=0.01)
  p.add_argument("--lam", type=float, default=20.0)
  p.add_argument("--cg-steps", type=int, default=30)
  p.add_argument("--cg-tol", type=float, default=0.05)
  p.add_argument("--eval-tasks", type=int, default=500)
  p.add_argument("--repeats", type=int, default=20)
  p.add_argument("--memory-steps", type=int, nargs="+", default=[1, 10, 100])
  p.add_argument("--only", choices=["train", "memory"], default=None)
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args(argv)

  family = jmeta.sinusoid(shots=a.shots, queries=a.shots)
  model = jmeta.MLP()
  params = model.init(jax.random.key(a.seed), jnp.zeros((1, 1)))
  loss = jmeta.mse_loss(model.apply)
  tasks = family.sample_batch(jax.random.key(a.seed + 1), a.meta_batch)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}; sinusoid {a.shots}-shot, MLP 1-40-40-1,"
        f" meta-batch {a.meta_batch}, float32")

  if a.only in (None, "train"):
    print(f"\n== meta-training {a.iterations} steps (adam 1e-3), then meta-test on {a.eval_tasks}"
          f" tasks after {a.steps} inner steps")
    print(f"{'learner':44s} {'test MSE (95% CI)':>22s} {'steps/s':>8s} {'compile s':>9s} {'skipped':>7s}"
          f" {'cg_residual':>11s}")
    for name, learner in learners(loss, a.steps, a.lam, a.inner_lr, a.cg_steps, a.cg_tol).items():
      step = jmeta.make_meta_step(learner, optax.adam(1e-3))
      state = step.init(jax.random.key(a.seed), params)
      compile_s, rate = speed(step, state, tasks, a.repeats)
      record = {}
      for state, record in jmeta.fit(step, state, family.sample_batch, key=jax.random.key(a.seed + 2),
                                     iterations=a.iterations, meta_batch=a.meta_batch,
                                     log_every=max(1, a.iterations // 4)):
        pass
      res = jmeta.evaluate(learner, state.meta_params, family.sample_batch, jax.random.key(10 ** 6),
                           num_tasks=a.eval_tasks, steps=(a.steps,))
      mse, ci = res[a.steps]["query_loss"]
      resid = record.get("cg_residual", float("nan"))
      print(f"{name:44s} {mse:12.3f} +- {ci:6.3f} {rate:8.1f} {compile_s:9.1f} {int(state.skipped):7d}"
            f" {resid:11.3g}")

  if a.only in (None, "memory"):
    print("\n== XLA temp memory of one compiled meta-step (bytes) vs inner steps")
    print(f"{'inner steps':>11s} {'maml':>12s} {'imaml':>12s}")
    for n in a.memory_steps:
      row = []
      for learner in learners(loss, n, a.lam, a.inner_lr, a.cg_steps, a.cg_tol).values():
        step = jmeta.make_meta_step(learner, optax.adam(1e-3))
        row.append(temp_bytes(step, step.init(jax.random.key(0), params), tasks))
      print(f"{n:11d} {row[0]:12,d} {row[1]:12,d}")


if __name__ == "__main__":
  main()
