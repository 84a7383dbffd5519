"""jmeta's engine overhead over a hand-written JAX MAML step, split into its parts.

``python -m benchmarks.experiments.engine_overhead [--inner-steps 1] [--rounds 21]``
times, in one process and in alternating rounds of ``--calls`` back-to-back
meta-steps (each round ended by ``block_until_ready``), on the same weights and
task batches (sinusoid MAML, MLP 1-40-40-1, 10 shots and queries, meta-batch
25, Adam; the harness's ``sinusoid`` config):

* ``jax``: the hand-written step of ``benchmarks/_plain_jax.py`` (one ``jit``
  with donation, tasks ``vmap``-ed);
* ``update-full``: ``make_meta_step(...).update`` with the default metrics;
* ``update-lean``: the same with ``metrics="lean"`` (README's quickstart);
* ``jit-lean``: ``jax.jit(step.step_fn)`` called directly (no ``update``
  wrapper: no argument checks);
* ``jit-donate-lean``: the same with the state donated, as the hand-written
  step does.

It prints each one's median microseconds per meta-step and the median and range
of its per-round meta-steps/s ratio to ``jax`` (paired by round), so the cost of
the metrics, of ``update``'s checks and of donation can be read off side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

README_FIGURE = "README 'Speed': jmeta against hand-written JAX, split into metrics, update and donation"


def _jmeta_runner(cfg, weights, batches, mode: str, metrics: str):
  """``(run, sync)`` of one jmeta variant: ``mode`` is update, jit or donate."""
  import jax
  import jax.numpy as jnp
  import optax
  import jmeta
  from benchmarks._jax_side import _to_flax, _to_task
  net = jmeta.MLP()
  learner = jmeta.maml(jmeta.mse_loss(net.apply), optax.sgd(cfg.inner_lr), steps=cfg.inner_steps)
  step = jmeta.make_meta_step(learner, optax.adam(cfg.outer_lr), metrics=metrics)
  tasks = [_to_task(cfg, b, jnp.float32) for b in batches]
  box = {"state": step.init(jax.random.key(0), _to_flax(cfg, weights, jnp.float32)),
         "metrics": None, "i": 0}
  if mode == "update":
    call = step.update
  else:
    call = jax.jit(step.step_fn, donate_argnums=(0,) if mode == "donate" else ())
    box["state"] = jax.tree.map(jnp.copy, box["state"])

  def run():
    box["state"], box["metrics"] = call(box["state"], tasks[box["i"] % len(tasks)])
    box["i"] += 1

  return run, lambda: jax.block_until_ready((box["state"], box["metrics"]))


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--inner-steps", type=int, default=1)
  p.add_argument("--rounds", type=int, default=21)
  p.add_argument("--calls", type=int, default=200, help="meta-steps per round")
  args = p.parse_args(argv)
  if args.rounds < 3 or args.calls < 1:
    p.error("--rounds must be >= 3 and --calls >= 1")

  import jax
  from benchmarks._configs import init_weights, make_batches, sinusoid_config
  from benchmarks._machine import load_average
  from benchmarks._plain_jax import PlainJaxImpl
  cfg = sinusoid_config(args.inner_steps)
  weights, batches = init_weights(cfg), make_batches(cfg, 4)
  plain = PlainJaxImpl(cfg, weights, batches)
  impls = {"jax": (plain.step, plain.sync)}
  for name, mode, metrics in (("update-full", "update", "full"), ("update-lean", "update", "lean"),
                              ("jit-lean", "jit", "lean"), ("jit-donate-lean", "donate", "lean")):
    impls[name] = _jmeta_runner(cfg, weights, batches, mode, metrics)
  for run, sync in impls.values():  # compile and warm up
    for _ in range(20):
      run()
    sync()
  print(f"sinusoid MAML, {args.inner_steps} inner step(s), meta-batch {cfg.tasks}; jax "
        f"{jax.__version__}, backend {jax.default_backend()}; load average at start "
        f"{load_average()}", flush=True)
  times = {k: [] for k in impls}
  for _ in range(args.rounds):
    for name, (run, sync) in impls.items():
      t = time.perf_counter()
      for _ in range(args.calls):
        run()
      sync()
      times[name].append((time.perf_counter() - t) / args.calls)
  for name, ts in times.items():
    ratios = [b / t for b, t in zip(times["jax"], ts)]
    print(f"{name:16s} {statistics.median(ts) * 1e6:8.1f} us per meta-step; meta-steps/s over jax:"
          f" median {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
  print(f"load average at end {load_average()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
