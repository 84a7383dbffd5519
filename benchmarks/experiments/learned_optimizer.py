"""A learned optimizer against tuned SGD and tuned Adam on held-out regression tasks.

Usage::

  python -m benchmarks.experiments.learned_optimizer [--iterations 2000] [--steps 20]

Meta-trains ``mlp_optimizer()`` (Andrychowicz et al. 2016) by backpropagating
through 20-step unrolls of a linear model's training on linear-regression tasks
(8 inputs, 16 examples, noise 0.1: ill-conditioned least squares), then trains
the same model from the same initialisation on held-out tasks with the learned
optimizer, with SGD and with Adam, each baseline's learning rate picked on a
separate tuning set of tasks from a log grid. Reports the training loss after
``steps`` steps (mean and 95% CI over test tasks) and writes
``benchmarks/results/learned_optimizer.{png,json}``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jmeta
from jmeta import learned_optimizer, mlp_optimizer
from benchmarks.experiments import RESULTS_ROOT

README_FIGURE = ("README 'Beyond MAML': the learned-optimizer plot "
                 '(benchmarks/results/learned_optimizer.png)')

RESULTS = pathlib.Path(RESULTS_ROOT)


def linear_apply(params, x):
  return x @ params["w"] + params["b"]


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--iterations", type=int, default=2000)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--meta-batch", type=int, default=16)
  ap.add_argument("--test-tasks", type=int, default=1000)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  dim = 8
  family = jmeta.linear_regression(shots=16, queries=16, dim=dim, noise=0.1)
  loss = jmeta.mse_loss(linear_apply)
  params = {"w": jnp.zeros((dim, 1)), "b": jnp.zeros(())}
  lopt = mlp_optimizer()
  learner = learned_optimizer(loss, lopt, steps=args.steps)
  step = jmeta.make_meta_step(learner, optax.adam(3e-3), clip_norm=1.0)
  key = jax.random.key(args.seed)
  k_init, k_train, k_tune, k_test = jax.random.split(key, 4)
  state = step.init(k_init, params)

  log_every = max(1, min(200, args.iterations))
  t0 = time.perf_counter()
  history, compile_s, block_times = [], None, []
  for state, rec in jmeta.fit(step, state, family.sample_batch, key=k_train, iterations=args.iterations,
                               meta_batch=args.meta_batch, log_every=log_every):
    jax.block_until_ready(state)
    now = time.perf_counter()
    if compile_s is None:
      compile_s = now - t0  # first block: compilation plus one block of steps
    else:
      block_times.append(now - t0)
    t0 = now
    history.append({"step": rec["step"], "unroll_loss": rec["unroll_loss"], "support_loss": rec["support_loss"]})
    print(f"meta-step {rec['step']}: unroll loss {rec['unroll_loss']:.4f}, final loss {rec['support_loss']:.4f}",
          flush=True)
  steps_per_s = (log_every * len(block_times) / sum(block_times)) if block_times else float("nan")

  tune = family.sample_batch(k_tune, 500)
  test = family.sample_batch(k_test, args.test_tasks)

  def curves(opt, tasks):
    run = jax.jit(jax.vmap(lambda x, y: jmeta.inner_loop(loss, params, x, y, opt, args.steps).losses))
    return np.asarray(run(tasks.support_x, tasks.support_y))

  def final_mean(c):
    v = c[:, -1]
    return float(np.mean(v)) if np.all(np.isfinite(v)) else float("inf")

  grids = {"sgd": (optax.sgd, np.logspace(-2, 0, 13)), "adam": (optax.adam, np.logspace(-2.5, 0.5, 13))}
  results = {}
  for name, (make, lrs) in grids.items():
    tuned = {float(lr): final_mean(curves(make(float(lr)), tune)) for lr in lrs}
    best = min(tuned, key=tuned.get)
    c = curves(make(best), test)
    results[name] = {"lr": best, "grid": tuned, "curve": c.mean(0).tolist(),
                     "final": jmeta.mean_ci95(c[:, -1])}
  c = curves(lopt.transform(state.meta_params["opt"]), test)
  results["learned"] = {"curve": c.mean(0).tolist(), "final": jmeta.mean_ci95(c[:, -1])}

  for name in ("learned", "sgd", "adam"):
    m, ci = results[name]["final"]
    lr = f" (lr {results[name]['lr']:.4g})" if "lr" in results[name] else ""
    print(f"{name}{lr}: training loss after {args.steps} steps {m:.4f} +- {ci:.4f}")
  print(f"meta-training: compile+first block {compile_s:.1f}s, steady {steps_per_s:.1f} meta-steps/s")

  RESULTS.mkdir(exist_ok=True)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, style in (("learned", "-"), ("sgd", "--"), ("adam", ":")):
    r = results[name]
    label = name + (f" (tuned lr {r['lr']:.3g})" if "lr" in r else " (mlp_optimizer)")
    ax.plot(np.arange(args.steps + 1), r["curve"], style, label=label)
  ax.set_yscale("log")
  ax.set_xlabel("optimizer step")
  ax.set_ylabel(f"training loss (mean of {args.test_tasks} held-out tasks)")
  ax.set_title("learned optimizer vs tuned SGD / Adam\nlinear regression, d=8, n=16", fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(RESULTS / "learned_optimizer.png", dpi=120)
  out = {"config": vars(args), "meta_training": {"history": history, "compile_and_first_block_s": compile_s,
                                                 "steady_meta_steps_per_s": steps_per_s},
         "results": results, "devices": str(jax.devices())}
  (RESULTS / "learned_optimizer.json").write_text(json.dumps(out, indent=1))
  print(f"wrote {RESULTS / 'learned_optimizer.png'} and .json")


if __name__ == "__main__":
  main()
