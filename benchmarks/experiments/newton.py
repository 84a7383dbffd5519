"""Newton-type inner steps vs SGD: loss after one step, and MAML with one curvature step.

Prints:
  * the support and query loss after ONE inner step of SGD (a few learning
    rates), Newton-CG and Gauss-Newton-CG, from the same initialisation, on
    linear-regression tasks (where one Newton step is exact) and on sinusoid
    tasks with the 1-40-40-1 MLP (mean and 95% CI over tasks);
  * a short MAML meta-training run with one inner step of SGD vs one
    Gauss-Newton step: meta-test MSE after one step (95% CI) and meta-steps/s
    (compile time apart).

Usage::

  python -m benchmarks.experiments.newton                # default (~2-3 min on 2 CPU cores)
  python -m benchmarks.experiments.newton --iterations 2000 --tasks 500
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import jmeta
from jmeta import gauss_newton, newton

README_FIGURE = "README 'Beyond MAML': Newton-type inner steps against SGD (printed)"


def one_step_table(title, loss, params, tasks, optimizers):
  print(f"\n== {title}: loss after one inner step ({tasks.support_x.shape[0]} tasks, mean +- 95% CI)")
  print(f"{'inner step':34s} {'support loss':>22s} {'query loss':>22s}")

  for name, opt in optimizers.items():
    @jax.jit
    def run(tasks, opt=opt):
      def one(t):
        res = jmeta.inner_loop(loss, params, t.support_x, t.support_y, opt, 1)
        return res.losses, loss(res.params, t.query_x, t.query_y)
      return jax.vmap(one)(tasks)

    losses, query = run(tasks)
    s, sc = jmeta.mean_ci95(losses[:, -1])
    q, qc = jmeta.mean_ci95(query)
    print(f"{name:34s} {s:12.4g} +- {sc:8.3g} {q:12.4g} +- {qc:8.3g}")
  s0, c0 = jmeta.mean_ci95(losses[:, 0])
  print(f"{'(before adaptation)':34s} {s0:12.4g} +- {c0:8.3g}")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", type=int, default=200)
  p.add_argument("--iterations", type=int, default=1000)
  p.add_argument("--meta-batch", type=int, default=10)
  p.add_argument("--damping", type=float, default=1.0)
  p.add_argument("--cg-steps", type=int, default=20)
  p.add_argument("--repeats", type=int, default=20)
  p.add_argument("--only", choices=["one-step", "maml"], default=None)
  p.add_argument("--seed", type=int, default=0)
  a = p.parse_args(argv)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, float32")
  key = jax.random.key(a.seed)
  # "ignore": report truncated Newton steps as they are (a NaN would hide the figure).
  cg = dict(cg_steps=a.cg_steps, cg_tol=1e-4, on_cg_failure="ignore")

  if a.only in (None, "one-step"):
    lin_apply = lambda p, x: x @ p["w"] + p["b"]
    lin_params = {"w": jnp.zeros((5, 1)), "b": jnp.zeros(())}
    lin_tasks = jmeta.linear_regression(shots=10, queries=10, dim=5).sample_batch(key, a.tasks)
    one_step_table("linear regression, dim 5, 10 shots", jmeta.mse_loss(lin_apply), lin_params,
                   lin_tasks, {
                       "sgd lr=0.1": optax.sgd(0.1), "sgd lr=0.3": optax.sgd(0.3),
                       "newton (undamped)": newton(1.0, **cg),
                       "gauss_newton (undamped)": gauss_newton(lin_apply, "mse", 1.0, **cg)})

    model = jmeta.MLP()
    params = model.init(jax.random.key(a.seed), jnp.zeros((1, 1)))
    sin_tasks = jmeta.sinusoid(shots=10, queries=10).sample_batch(jax.random.fold_in(key, 1), a.tasks)
    d = a.damping
    one_step_table("sinusoid, MLP 1-40-40-1 (random init)", jmeta.mse_loss(model.apply), params,
                   sin_tasks, {
                       "sgd lr=0.01": optax.sgd(0.01), "sgd lr=0.03": optax.sgd(0.03),
                       f"newton (damping {d})": newton(1.0, damping=d, **cg),
                       f"newton (damping {10 * d})": newton(1.0, damping=10 * d, **cg),
                       f"gauss_newton (damping {d})": gauss_newton(model.apply, "mse", 1.0, damping=d,
                                                                  **cg)})

  if a.only in (None, "maml"):
    model = jmeta.MLP()
    params = model.init(jax.random.key(a.seed), jnp.zeros((1, 1)))
    loss = jmeta.mse_loss(model.apply)
    family = jmeta.sinusoid(shots=10, queries=10)
    tasks = family.sample_batch(jax.random.fold_in(key, 2), a.meta_batch)
    print(f"\n== MAML, one inner step, sinusoid 10-shot: {a.iterations} meta-steps (adam 1e-3,"
          f" meta-batch {a.meta_batch}), meta-test on 500 tasks")
    print(f"{'inner step':34s} {'test MSE (95% CI)':>22s} {'steps/s':>8s} {'compile s':>9s} {'skipped':>7s}")
    for name, opt in {"sgd lr=0.01": optax.sgd(0.01),
                      f"gauss_newton (damping {a.damping})": gauss_newton(
                          model.apply, "mse", 1.0, damping=a.damping, **cg)}.items():
      learner = jmeta.maml(loss, opt, steps=1)
      step = jmeta.make_meta_step(learner, optax.adam(1e-3))
      state = step.init(jax.random.key(a.seed), params)
      t0 = time.perf_counter()
      s, _ = step.update(state, tasks)
      jax.block_until_ready(s)
      compile_s = time.perf_counter() - t0
      t0 = time.perf_counter()
      for _ in range(a.repeats):
        s, _ = step.update(s, tasks)
      jax.block_until_ready(s)
      rate = a.repeats / (time.perf_counter() - t0)
      for state, _ in jmeta.fit(step, state, family.sample_batch, key=jax.random.fold_in(key, 3),
                                iterations=a.iterations, meta_batch=a.meta_batch,
                                log_every=max(1, a.iterations // 4)):
        pass
      res = jmeta.evaluate(learner, state.meta_params, family.sample_batch, jax.random.key(10 ** 6),
                           num_tasks=500, steps=(1,))
      mse, ci = res[1]["query_loss"]
      print(f"{name:34s} {mse:12.3f} +- {ci:6.3f} {rate:8.1f} {compile_s:9.1f} {int(state.skipped):7d}")


if __name__ == "__main__":
  main()
