"""jmeta's engine overhead over a hand-written JAX MAML step, split into its parts.

``python -m benchmarks.experiments.engine_overhead [--inner-steps 1] [--rounds 21]``
times, in one process and in alternating rounds of ``--calls`` back-to-back
meta-steps (each round ended by ``block_until_ready``), on the same weights and
task batches (sinusoid MAML, MLP 1-40-40-1, 10 shots and queries, meta-batch
25, Adam; the harness's ``sinusoid`` config):

* ``jax``: the hand-written step of ``benchmarks/_plain_jax.py`` (one ``jit``
  with donation, tasks ``vmap``-ed);
* ``update-full``: ``make_meta_step(...).update`` with the default metrics;
* ``update-lean``: the same with ``metrics="lean"``;
* ``update-lean-donate``: the same with ``donate=True`` (README's quickstart):
  the state's buffers are reused for the new state;
* ``jit-lean``: ``jax.jit(step.step_fn)`` called directly (no ``update``
  wrapper: no argument checks);
* ``jit-donate-lean``: the same with the state donated, as the hand-written
  step does.

With ``--ablations`` four more rows take jmeta's engine apart, written here
from public names only, each donated like the hand-written step:

* ``bare-task-grad``: ``jmeta.mean_over_tasks`` of the learner's
  ``task_grad`` (vmap) and the Adam update, nothing else: no guard, no
  metrics but the query loss;
* ``bare-grad-of-mean``: ``jax.grad`` of the mean of the ``vmap``-ed
  ``learner.task_loss`` (the hand-written step's form) and the Adam update;
* ``bare+pre-guard``: ``bare-task-grad`` whose update is skipped (a select
  per leaf) when the query loss or the meta-gradient's norm is not finite:
  a flag known before the update, so XLA fuses the selects into Adam's kernels;
* ``bare+full-guard``: the same flag and also the check that the updated
  parameters and Adam state are finite (one concatenated reduction), as
  ``make_meta_step``'s guard does: the selects then wait for the updated
  state, and the update and the selects become separate kernels.

The gap between ``bare-task-grad`` and ``jax`` is what the learner's structure
costs (flax model, optax inner optimizer, per-task gradients); between the two
guards what checking the optimizer's output costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

README_FIGURE = "README 'Speed': jmeta against hand-written JAX, split into metrics, update and donation"


def _jmeta_runner(cfg, weights, batches, mode: str, metrics: str):
  """``(run, sync)`` of one jmeta variant: ``mode`` is update, update-donate, jit or donate."""
  import jax
  import jax.numpy as jnp
  import optax
  import jmeta
  from benchmarks._jax_side import _to_flax, _to_task
  net = jmeta.MLP()
  learner = jmeta.maml(jmeta.mse_loss(net.apply), optax.sgd(cfg.inner_lr), steps=cfg.inner_steps)
  step = jmeta.make_meta_step(learner, optax.adam(cfg.outer_lr), metrics=metrics,
                              donate=mode == "update-donate")
  tasks = [_to_task(cfg, b, jnp.float32) for b in batches]
  box = {"state": step.init(jax.random.key(0), _to_flax(cfg, weights, jnp.float32)),
         "metrics": None, "i": 0}
  if mode in ("update", "update-donate"):
    call = step.update
  else:
    call = jax.jit(step.step_fn, donate_argnums=(0,) if mode == "donate" else ())
    box["state"] = jax.tree.map(jnp.copy, box["state"])

  def run():
    box["state"], box["metrics"] = call(box["state"], tasks[box["i"] % len(tasks)])
    box["i"] += 1

  return run, lambda: jax.block_until_ready((box["state"], box["metrics"]))


def _ablation_runner(cfg, weights, batches, form: str):
  """``(run, sync)`` of a stripped meta-step: ``form`` is one of ``ABLATIONS``."""
  import jax
  import jax.numpy as jnp
  import optax
  import jmeta
  from benchmarks._jax_side import _to_flax, _to_task
  net = jmeta.MLP()
  learner = jmeta.maml(jmeta.mse_loss(net.apply), optax.sgd(cfg.inner_lr), steps=cfg.inner_steps,
                       metrics_before=False)
  opt = optax.adam(cfg.outer_lr)

  def step(params, opt_state, tasks):
    if form == "grad-of-mean":
      mean_loss = lambda p: jnp.mean(jax.vmap(lambda t: learner.task_loss(p, t)[0])(tasks))
      loss, grads = jax.value_and_grad(mean_loss)(params)
    else:
      grads, out = jmeta.mean_over_tasks(lambda t: learner.task_grad(params, t), tasks, mode="vmap")
      loss = out["query_loss"]
    updates, new_opt = opt.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    if form in ("pre-guard", "full-guard"):
      ok = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads))
      if form == "full-guard":
        ok = ok & jnp.all(jnp.isfinite(jnp.concatenate(
            [jnp.ravel(l) for l in jax.tree.leaves((new_params, new_opt))
             if jnp.issubdtype(l.dtype, jnp.floating)])))
      pick = lambda new, old: jax.tree.map(lambda u, v: jnp.where(ok, u, v), new, old)
      new_params, new_opt = pick(new_params, params), pick(new_opt, opt_state)
    return new_params, new_opt, loss

  call = jax.jit(step, donate_argnums=(0, 1))
  tasks = [_to_task(cfg, b, jnp.float32) for b in batches]
  params = _to_flax(cfg, weights, jnp.float32)
  box = {"state": (jax.tree.map(jnp.copy, params), opt.init(params)), "loss": None, "i": 0}

  def run():
    p, o, box["loss"] = call(*box["state"], tasks[box["i"] % len(tasks)])
    box["state"] = (p, o)
    box["i"] += 1

  return run, lambda: jax.block_until_ready((box["state"], box["loss"]))


ABLATIONS = {"bare-task-grad": "task-grad", "bare-grad-of-mean": "grad-of-mean",
             "bare+pre-guard": "pre-guard", "bare+full-guard": "full-guard"}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--inner-steps", type=int, default=1)
  p.add_argument("--rounds", type=int, default=21)
  p.add_argument("--calls", type=int, default=200, help="meta-steps per round")
  p.add_argument("--ablations", action="store_true",
                 help="also time the stripped steps of ABLATIONS (see the module docstring)")
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
                              ("update-lean-donate", "update-donate", "lean"),
                              ("jit-lean", "jit", "lean"), ("jit-donate-lean", "donate", "lean")):
    impls[name] = _jmeta_runner(cfg, weights, batches, mode, metrics)
  if args.ablations:
    for name, form in ABLATIONS.items():
      impls[name] = _ablation_runner(cfg, weights, batches, form)
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
    print(f"{name:18s} {statistics.median(ts) * 1e6:8.1f} us per meta-step; meta-steps/s over jax:"
          f" median {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
  print(f"load average at end {load_average()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
