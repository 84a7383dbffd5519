"""A learned inner loss (ML^3) against the mean squared error on sinusoid regression.

Usage::

  python -m benchmarks.experiments.learned_loss [--iterations 3000] [--shots 5]

Two comparisons on held-out sinusoid tasks (Finn et al. 2017 family, K shots,
the 1-40-40-1 MLP, one inner SGD step of rate 0.01 during meta-training):

* ``maml`` (inner loss = MSE) against ``learned_loss`` with a meta-learned
  initialisation too (inner loss = the loss network), same outer budget;
* from a fixed random initialisation: plain SGD on the MSE (learning rate tuned
  on a grid) against SGD on the meta-learned loss (``learn_init=False``).

Meta-test MSE on the query set after k inner steps, mean and 95% CI over 1000
tasks; writes ``benchmarks/results/learned_loss.{png,json}``.
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
from jmeta import learned_loss, loss_network
from benchmarks.experiments import RESULTS_ROOT

README_FIGURE = ("README 'Beyond MAML': the learned-loss plot (benchmarks/results/learned_loss.png)")

RESULTS = pathlib.Path(RESULTS_ROOT)
EVAL_STEPS = (0, 1, 2, 5, 10)


def train(learner, params, family, key, iterations, meta_batch, name):
  step = jmeta.make_meta_step(learner, optax.adam(1e-3))
  k_init, k_data = jax.random.split(key)
  state = step.init(k_init, params)
  t0, first, times = time.perf_counter(), None, []
  log_every = max(1, min(500, iterations))
  for state, rec in jmeta.fit(step, state, family.sample_batch, key=k_data, iterations=iterations,
                               meta_batch=meta_batch, log_every=log_every):
    jax.block_until_ready(state)
    now = time.perf_counter()
    if first is None:
      first = now - t0
    else:
      times.append(now - t0)
    t0 = now
    print(f"{name} meta-step {rec['step']}: query loss {rec['query_loss']:.4f}", flush=True)
  rate = log_every * len(times) / sum(times) if times else float("nan")
  return state.meta_params, {"compile_and_first_block_s": first, "steady_meta_steps_per_s": rate}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--iterations", type=int, default=3000)
  ap.add_argument("--shots", type=int, default=5)
  ap.add_argument("--meta-batch", type=int, default=25)
  ap.add_argument("--test-tasks", type=int, default=1000)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()

  family = jmeta.sinusoid(shots=args.shots, queries=10)
  model = jmeta.MLP()
  key = jax.random.key(args.seed)
  k_model, k_maml, k_ll, k_fixed, k_test = jax.random.split(key, 5)
  params = model.init(k_model, jnp.zeros((1, 1)))
  mse = jmeta.mse_loss(model.apply)
  inner = optax.sgd(0.01)
  net = loss_network(hidden=(32, 32))
  learners = {
      "maml (MSE inner loss)": (jmeta.maml(mse, inner, steps=1), k_maml),
      "learned loss + learned init": (learned_loss(model.apply, mse, inner, steps=1, network=net), k_ll),
      "learned loss, fixed init": (
          learned_loss(model.apply, mse, inner, steps=1, network=net, learn_init=False), k_fixed),
  }
  results, timing = {}, {}
  for name, (learner, k) in learners.items():
    mp, timing[name] = train(learner, params, family, k, args.iterations, args.meta_batch, name)
    table = jmeta.evaluate(learner, mp, family.sample_batch, k_test, num_tasks=args.test_tasks,
                           steps=EVAL_STEPS)
    results[name] = {s: table[s]["query_loss"] for s in EVAL_STEPS}

  # Fixed random init, SGD on the MSE with a tuned rate (tuned on other tasks).
  k_tune = jax.random.fold_in(k_test, 1)
  grid = [0.0003, 0.001, 0.002, 0.003, 0.005, 0.01, 0.03, 0.1, 0.3]
  tuned = {}
  for lr in grid:
    t = jmeta.evaluate(jmeta.maml(mse, optax.sgd(lr), steps=1), params, family.sample_batch, k_tune,
                       num_tasks=300, steps=(1,))
    tuned[lr] = t[1]["query_loss"][0]
  best = min(tuned, key=tuned.get)
  table = jmeta.evaluate(jmeta.maml(mse, optax.sgd(best), steps=1), params, family.sample_batch, k_test,
                         num_tasks=args.test_tasks, steps=EVAL_STEPS)
  results[f"fixed init, MSE, SGD lr {best} (tuned)"] = {s: table[s]["query_loss"] for s in EVAL_STEPS}

  for name, r in results.items():
    print(name + ": " + ", ".join(f"{s} steps {m:.3f} +- {ci:.3f}" for s, (m, ci) in r.items()))
  for name, t in timing.items():
    print(f"{name}: compile+first block {t['compile_and_first_block_s']:.1f}s,"
          f" steady {t['steady_meta_steps_per_s']:.1f} meta-steps/s")

  RESULTS.mkdir(exist_ok=True)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for name, r in results.items():
    m = np.array([r[s][0] for s in EVAL_STEPS])
    ci = np.array([r[s][1] for s in EVAL_STEPS])
    ax.errorbar(EVAL_STEPS, m, yerr=ci, marker="o", capsize=3, label=name)
  ax.set_yscale("log")
  ax.set_ylim(0.5, 30.0)  # the fixed-init learned loss diverges past its trained horizon (see the JSON)
  ax.set_xlabel("inner SGD steps at meta-test (meta-trained with 1)")
  ax.set_ylabel("query MSE (mean, 95% CI)")
  ax.set_title(f"learned loss (ML^3) vs MSE, sinusoid {args.shots}-shot")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(RESULTS / "learned_loss.png", dpi=120)
  out = {"config": vars(args), "results": {n: {str(s): v for s, v in r.items()} for n, r in results.items()},
         "mse_lr_grid": tuned, "timing": timing, "devices": str(jax.devices())}
  (RESULTS / "learned_loss.json").write_text(json.dumps(out, indent=1))
  print(f"wrote {RESULTS / 'learned_loss.png'} and .json")


if __name__ == "__main__":
  main()
