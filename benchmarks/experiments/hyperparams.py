"""Hypergradient descent on the inner learning rate against a grid search.

Usage::

  python -m benchmarks.experiments.hyperparams [--meta-steps 30] [--steps 100]

The objective is the validation (query) loss, averaged over a fixed batch of 64
linear-regression tasks (8 inputs, 10 noisy training examples each: training
too long overfits), of a linear model trained from zero by ``--steps`` steps of
SGD with weight decay (``sgd_with_weight_decay``).

* grid search over (learning rate, weight decay): 25 rates log-spaced over
  [1e-4, 1] times 9 decays over [1e-5, 1];
* hypergradient: ``learned_hyperparams`` over both, from the bad rate 1e-3
  (and decay 1e-3), Adam(0.3) on the logs, ``--meta-steps`` meta-steps
  (reverse-mode through the unrolled training) through ``jmeta.make_meta_step``;
* a learned schedule: one rate per step plus the weight decay, same budget.

Reports the validation loss reached, its ratio to the grid's best, loss on
held-out tasks, and the wall time of each search (compile time apart, same
process, same jit-compiled unroll); writes
``benchmarks/results/hyperparams.{png,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jmeta
from jmeta import hyperparams_of, learned_hyperparams
from benchmarks.experiments import RESULTS_ROOT

README_FIGURE = ("README 'Beyond MAML': hypergradient learning rate against a 225-point grid "
                 '(benchmarks/results/hyperparams.png)')

RESULTS = pathlib.Path(RESULTS_ROOT)


def linear_apply(params, x):
  return x @ params["w"] + params["b"]


def timed(fn, *args):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - start


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--steps", type=int, default=100)
  ap.add_argument("--meta-steps", type=int, default=30)
  ap.add_argument("--outer-lr", type=float, default=0.3)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  dim = 8
  family = jmeta.linear_regression(shots=10, queries=20, dim=dim, noise=0.5)
  loss = jmeta.mse_loss(linear_apply)
  params = {"w": jnp.zeros((dim, 1)), "b": jnp.zeros(())}
  k_tasks, k_test = jax.random.split(jax.random.key(args.seed))
  tasks, test = family.sample_batch(k_tasks, 64), family.sample_batch(k_test, 1000)

  start = {"learning_rate": 1e-3, "weight_decay": 1e-3}
  scalar = learned_hyperparams(loss, init=start, steps=args.steps)
  schedule = learned_hyperparams(loss, init=start, per_step=("learning_rate",), steps=args.steps)

  def val_loss(learner, mp, batch):
    return jnp.mean(jax.vmap(lambda t: learner.task_loss(mp, t)[0])(batch))

  @jax.jit
  def grid_point(log_lr, log_wd, batch):
    mp = {"params": params, "log_hyperparams": {"learning_rate": log_lr, "weight_decay": log_wd}}
    return val_loss(scalar, mp, batch)

  # Grid search: compile once, then time the grid.
  lrs, wds = np.logspace(-4, 0, 25), np.logspace(-5, 0, 9)
  _, grid_compile = timed(grid_point, jnp.log(lrs[0]), jnp.log(wds[0]), tasks)
  t0 = time.perf_counter()
  grid = [[float(grid_point(jnp.log(lr), jnp.log(wd), tasks)) for wd in wds] for lr in lrs]
  grid_s = time.perf_counter() - t0
  n_grid = len(lrs) * len(wds)
  finite = [(v, lr, wd) for row, lr in zip(grid, lrs) for v, wd in zip(row, wds) if math.isfinite(v)]
  best_val, best_lr, best_wd = min(finite)

  def search(learner, name):
    step = jmeta.make_meta_step(learner, optax.adam(args.outer_lr))
    state = step.init(jax.random.key(0), params)
    _, compile_s = timed(step.update, state, tasks)  # compile + the first meta-step
    seen, t0 = [], time.perf_counter()
    for _ in range(args.meta_steps):
      mp = state.meta_params
      state, m = step.update(state, tasks)
      seen.append((mp, m["query_loss"]))
    jax.block_until_ready(state)
    search_s = time.perf_counter() - t0
    trace = [{"val_loss": float(v), **{k: np.asarray(h).tolist() for k, h in hyperparams_of(mp).items()}}
             for mp, v in seen]
    final = float(jax.jit(lambda mp: val_loss(learner, mp, tasks))(state.meta_params))
    held_out = float(jax.jit(lambda mp: val_loss(learner, mp, test))(state.meta_params))
    hp = {k: np.asarray(v).tolist() for k, v in hyperparams_of(state.meta_params).items()}
    trace.append({"val_loss": final, **hp})
    print(f"{name}: val loss {final:.4f} ({final / best_val:.3f} x grid best), held-out {held_out:.4f},"
          f" {args.meta_steps} meta-steps in {search_s:.2f}s (compile+1 step {compile_s:.1f}s),"
          f" {int(state.skipped)} skipped")
    return {"trace": trace, "final_val": final, "ratio_to_grid_best": final / best_val, "held_out": held_out,
            "search_s": search_s, "compile_s": compile_s, "skipped": int(state.skipped),
            "hyperparams": hp}

  res_scalar = search(scalar, "learned lr + wd")
  res_sched = search(schedule, "learned schedule + wd")
  best_mp = {"params": params,
             "log_hyperparams": {"learning_rate": jnp.log(best_lr), "weight_decay": jnp.log(best_wd)}}
  grid_held_out = float(jax.jit(lambda mp: val_loss(scalar, mp, test))(best_mp))
  print(f"grid ({len(lrs)} x {len(wds)} = {n_grid} points): best val loss {best_val:.4f} at lr {best_lr:.4g},"
        f" wd {best_wd:.3g}, held-out {grid_held_out:.4f}, {grid_s:.2f}s (compile {grid_compile:.1f}s)")
  for name, r in (("learned lr + wd", res_scalar), ("learned schedule + wd", res_sched)):
    r["compute_fraction_of_grid"] = r["search_s"] / grid_s
    print(f"{name}: {args.meta_steps} hypergradient steps vs {n_grid} grid evaluations;"
          f" wall time {r['search_s'] / grid_s:.2f} x the grid's")

  RESULTS.mkdir(exist_ok=True)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
  g = np.array(grid)[:, list(wds).index(best_wd)]
  a1.plot(lrs, np.where(np.isfinite(g), g, np.nan), ".-", color="gray", label=f"grid at wd={best_wd:.2g}")
  tr = res_scalar["trace"]
  a1.plot([t["learning_rate"] for t in tr], [t["val_loss"] for t in tr], "o-", color="tab:red", ms=3,
          label="hypergradient steps from lr=1e-3")
  a1.set_xscale("log")
  a1.set_yscale("log")
  a1.set_xlabel("learning rate")
  a1.set_ylabel("validation loss")
  a1.legend(fontsize=8)
  for name, r, c in (("learned lr + wd", res_scalar, "tab:red"), ("learned schedule + wd", res_sched, "tab:blue")):
    a2.plot([t["val_loss"] for t in r["trace"]], "o-", ms=3, color=c, label=name)
  a2.axhline(best_val, color="gray", ls="--", label="grid best")
  a2.axhline(1.05 * best_val, color="gray", ls=":", label="grid best + 5%")
  a2.set_yscale("log")
  a2.set_xlabel("meta-step")
  a2.set_ylabel("validation loss")
  a2.legend(fontsize=8)
  fig.suptitle(f"hypergradients vs grid search ({args.steps} SGD steps, 64 linear-regression tasks)")
  fig.tight_layout()
  fig.savefig(RESULTS / "hyperparams.png", dpi=120)
  out = {"config": vars(args), "grid": {"lrs": lrs.tolist(), "wds": wds.tolist(), "val": grid,
                                        "best_val": best_val, "best_lr": float(best_lr),
                                        "best_wd": float(best_wd), "held_out": grid_held_out,
                                        "search_s": grid_s, "compile_s": grid_compile},
         "learned_lr_and_wd": res_scalar, "learned_schedule": res_sched, "devices": str(jax.devices())}
  (RESULTS / "hyperparams.json").write_text(json.dumps(out, indent=1))
  print(f"wrote {RESULTS / 'hyperparams.png'} and .json")


if __name__ == "__main__":
  main()
