"""The sinusoid table of Li et al. (2017), Table 1: MSE after one adaptation step.

Meta-trains MAML and Meta-SGD on K-shot sinusoid regression (K = 5, 10, 20),
meta-tests on 1,000 held-out tasks (100 query points each) after one inner step,
and prints our MSE with its 95% confidence interval beside the paper's, with
meta-steps per second and compile time. Writes
``benchmarks/results/sinusoid_table.{json,md}``.

  python -m benchmarks.experiments.sinusoid_table                 # the full table (~10-20 min on 2 cores)
  python -m benchmarks.experiments.sinusoid_table --iterations 2000 --shots 10   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import optax

import jmeta
from benchmarks.experiments import RESULTS_ROOT

README_FIGURE = ("README 'Sinusoid regression (Li et al. 2017, Table 1)' "
                 '(benchmarks/results/sinusoid_table.md)')

PAPER = {  # Li et al. 2017, Table 1 (MSE after one step, 95% CI omitted there for MAML)
    ("maml", 5): 1.13, ("maml", 10): 0.77, ("maml", 20): 0.48,
    ("meta-sgd", 5): 0.90, ("meta-sgd", 10): 0.53, ("meta-sgd", 20): 0.31,
}


def run_one(algo: str, shots: int, iterations: int, seed: int, eval_tasks: int) -> dict:
  """Meta-trains one configuration and meta-tests it; returns its row."""
  family = jmeta.sinusoid(shots=shots, queries=shots)
  model = jmeta.MLP()
  k_init, k_meta, k_train, k_test = jax.random.split(jax.random.key(seed), 4)
  params = model.init(k_init, jnp.zeros((1, 1)))
  loss_fn = jmeta.mse_loss(model.apply)
  if algo == "maml":
    learner = jmeta.maml(loss_fn, optax.sgd(0.01), steps=1)
  else:
    learner = jmeta.meta_sgd(loss_fn, steps=1, init_lr=0.01)
  step = jmeta.make_meta_step(learner, optax.adam(1e-3))
  state = step.init(k_meta, params)
  block = 1000
  t0 = time.perf_counter()
  first = None
  for state, record in jmeta.fit(step, state, family.sample_batch, key=k_train,
                                 iterations=iterations, meta_batch=25, log_every=block):
    if first is None:
      first = time.perf_counter() - t0
      t_steady = time.perf_counter()
  total = time.perf_counter() - t0
  steady_steps = iterations - min(block, iterations)
  steady = (steady_steps / (time.perf_counter() - t_steady)) if steady_steps else float("nan")
  test = jmeta.sinusoid(shots=shots, queries=100)
  table = jmeta.evaluate(learner, state.meta_params, test.sample_batch, k_test,
                         num_tasks=eval_tasks, steps=(1,))
  mse, ci = table[1]["query_loss"]
  return {"algo": algo, "shots": shots, "mse_1step": mse, "ci95": ci, "paper": PAPER[(algo, shots)],
          "at_or_below_paper": mse <= PAPER[(algo, shots)], "iterations": iterations,
          "meta_batch": 25, "train_s": total, "first_block_s_incl_compile": first,
          "steady_meta_steps_per_s": steady, "skipped": int(state.skipped)}


def to_markdown(rows: list[dict], meta: dict) -> str:
  lines = [
      "| method | K | jmeta MSE (1 step) +/- 95% CI | paper (Li et al. 2017) | meta-steps | train time | steady meta-steps/s |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
        f"| {'MAML' if r['algo'] == 'maml' else 'Meta-SGD'} | {r['shots']} | {r['mse_1step']:.3f} +/- {r['ci95']:.3f}"
        f" | {r['paper']:.2f} | {r['iterations']} | {r['train_s']:.0f} s | {r['steady_meta_steps_per_s']:.0f} |")
  lines.append("")
  lines.append(f"1,000 held-out tasks, 100 query points each; meta-batch 25, inner SGD lr 0.01 (Meta-SGD: learned),"
               f" Adam 1e-3. Machine: {meta['machine']}, jax {meta['jax']} ({meta['backend']}).")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iterations", type=int, default=30000)
  parser.add_argument("--shots", type=int, nargs="*", default=[5, 10, 20])
  parser.add_argument("--algos", nargs="*", default=["maml", "meta-sgd"])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval-tasks", type=int, default=1000)
  parser.add_argument("--out", default=RESULTS_ROOT)
  args = parser.parse_args()
  meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
          "jax": jax.__version__, "backend": jax.default_backend()}
  rows = []
  for shots in args.shots:
    for algo in args.algos:
      row = run_one(algo, shots, args.iterations, args.seed, args.eval_tasks)
      rows.append(row)
      print(f"{algo:9s} K={shots:2d}: MSE {row['mse_1step']:.3f} +/- {row['ci95']:.3f}"
            f" (paper {row['paper']:.2f}); {row['train_s']:.0f} s,"
            f" {row['steady_meta_steps_per_s']:.0f} meta-steps/s,"
            f" first block incl. compile {row['first_block_s_incl_compile']:.1f} s", flush=True)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "sinusoid_table.json"), "w") as f:
    json.dump({"rows": rows, "meta": meta, "args": vars(args)}, f, indent=2)
  md = to_markdown(rows, meta)
  with open(os.path.join(args.out, "sinusoid_table.md"), "w") as f:
    f.write(md)
  print(md)


if __name__ == "__main__":
  main()
