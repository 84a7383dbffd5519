"""``jmeta train`` on the synthetic task families."""

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
from jmeta._plots import plot_loss_curve, plot_sinusoid_adaptation


def run_info(state) -> dict:
  """What every ``results.json`` records besides the figures: skips, versions, backend."""
  return {
      "skipped_meta_steps": int(state.skipped),
      "versions": {"jmeta": jmeta.__version__, "jax": jax.__version__, "optax": optax.__version__,
                   "python": platform.python_version()},
      "backend": jax.default_backend(),
  }


def make_family(name: str, shots: int, queries: int):
  """The task family called ``name`` on the command line."""
  if name == "sinusoid":
    return jmeta.sinusoid(shots=shots, queries=queries)
  if name == "linear":
    return jmeta.linear_regression(shots=shots, queries=queries)
  if name == "logistic":
    return jmeta.logistic_regression(shots=shots, queries=queries)
  raise ValueError(f"--task must be one of sinusoid, linear, logistic; got {name!r}")


def make_learner(args: argparse.Namespace, loss_fn):
  """The learner named by ``--algo`` with the inner-loop options."""
  steps = args.inner_steps if args.inner_steps is not None else (5 if args.algo == "reptile" else 1)
  inner = optax.sgd(args.inner_lr) if args.inner_opt == "sgd" else optax.adam(args.inner_lr, eps_root=1e-8)
  if args.algo == "maml":
    return jmeta.maml(loss_fn, inner, steps=steps, first_order=args.first_order)
  if args.algo == "fomaml":
    return jmeta.fomaml(loss_fn, inner, steps=steps)
  if args.algo == "meta-sgd":
    if args.inner_opt != "sgd":
      raise ValueError("--algo meta-sgd learns its own per-parameter SGD rates; --inner-opt must be sgd")
    return jmeta.meta_sgd(loss_fn, steps=steps, init_lr=args.inner_lr, first_order=args.first_order)
  if args.algo == "anil":
    return jmeta.anil(loss_fn, inner, steps=steps, first_order=args.first_order,
                      adapt=lambda p: jmeta.path_mask(p, "head"))
  if args.algo == "reptile":
    if args.first_order:
      raise ValueError("--first-order does not apply to reptile (it is first order already)")
    return jmeta.reptile(loss_fn, inner, steps=steps)
  raise ValueError(f"unknown --algo {args.algo!r}")


def _checkpointing(args, config, step, state, key):
  """``--checkpoint-every`` / ``--resume``: the start state, training loop, save hook, log mode."""
  from jmeta import _checkpoint
  every = getattr(args, "checkpoint_every", None)
  resume = getattr(args, "resume", False)
  if every is None and not resume:
    return state, jmeta.fit, lambda s: None, "w"
  if every is not None and every % args.log_every:
    raise ValueError(f"--checkpoint-every ({every}) must be a multiple of --log-every"
                     f" ({args.log_every}) so that checkpoints fall on block boundaries")
  directory = os.path.join(args.out, "checkpoints")
  skip = ("out", "iterations", "resume", "log_every", "checkpoint_every", "eval_tasks",
          "eval_queries", "eval_steps")
  described = json.loads(json.dumps({k: v for k, v in config.items() if k not in skip}, default=str))
  metrics = os.path.join(args.out, "metrics.jsonl")
  if resume:
    state = _checkpoint.restore_checkpoint(directory, state, key, described)
    done = int(state.step)
    lines = open(metrics).read().splitlines() if os.path.exists(metrics) else []
    with open(metrics, "w") as f:  # drop what a killed run logged after its checkpoint
      f.writelines(l + "\n" for l in lines if json.loads(l)["step"] <= done)
    print(f"jmeta train: resumed from {directory} at meta-step {done}", flush=True)
  elif _checkpoint.latest_step(directory) is not None:
    raise ValueError(f"{directory} already holds checkpoints: pass --resume to continue that run,"
                     " or choose another --out")

  def on_block(s):
    done = int(s.step)
    if every is not None and (done % every == 0 or done == args.iterations):
      _checkpoint.save_checkpoint(directory, s, key, described)

  return state, _checkpoint.fit_from, on_block, "a" if resume else "w"


def run(args: argparse.Namespace) -> int:
  """Meta-trains, meta-tests and writes ``metrics.jsonl``, ``results.json``, ``adaptation.png``."""
  from tqdm.auto import tqdm

  queries = args.queries or args.shots
  family = make_family(args.task, args.shots, queries)
  model = jmeta.MLP()
  dim = family.sample(jax.random.key(0)).support_x.shape[-1]
  key = jax.random.key(args.seed)
  k_init, k_meta, k_train, k_test, k_plot = jax.random.split(key, 5)
  params = model.init(k_init, jnp.zeros((1, dim)))
  loss_fn = (jmeta.binary_cross_entropy_loss(model.apply) if args.task == "logistic"
             else jmeta.mse_loss(model.apply))
  learner = make_learner(args, loss_fn)
  step = jmeta.make_meta_step(learner, optax.adam(args.meta_lr), clip_norm=args.clip_norm)
  state = step.init(k_meta, params)

  os.makedirs(args.out, exist_ok=True)
  config = {k: v for k, v in vars(args).items() if k not in ("command", "no_progress")}
  config["queries"] = queries
  state, train_loop, on_block, log_mode = _checkpointing(args, config, step, state, k_train)
  print(f"jmeta train: {args.algo} on {args.shots}-shot {args.task}, {args.iterations} meta-steps"
        f" of {args.meta_batch} tasks -> {args.out}", flush=True)
  t0 = time.time()
  compile_s = None
  bar = tqdm(total=args.iterations, disable=args.no_progress, unit="step", dynamic_ncols=True)
  bar.update(int(state.step))
  with open(os.path.join(args.out, "metrics.jsonl"), log_mode) as log:
    for state, record in train_loop(step, state, family.sample_batch, key=k_train,
                                    iterations=args.iterations, meta_batch=args.meta_batch,
                                    log_every=args.log_every):
      on_block(state)
      if compile_s is None:
        compile_s = time.time() - t0
      record["time_s"] = round(time.time() - t0, 3)
      log.write(json.dumps(record) + "\n")
      log.flush()
      bar.update(record["step"] - bar.n)
      bar.set_postfix(meta_loss=f"{record['query_loss']:.4f}")
      if record["nonfinite"]:
        bar.write(f"warning: {int(record['nonfinite'])} non-finite meta-step(s) skipped before step"
                  f" {record['step']}")
  bar.close()
  train_s = time.time() - t0

  test_family = make_family(args.task, args.shots, args.eval_queries)
  t1 = time.time()
  table = jmeta.evaluate(learner, state.meta_params, test_family.sample_batch, k_test,
                         num_tasks=args.eval_tasks, steps=args.eval_steps)
  eval_s = time.time() - t1
  metric = "query_loss"
  label = "cross-entropy" if args.task == "logistic" else "MSE"
  print(f"\nmeta-test on {args.eval_tasks} held-out tasks ({args.shots} shots,"
        f" {args.eval_queries} query points each):")
  print(f"  {'steps':>5}  {label:>14}  {'accuracy':>16}" if args.task == "logistic"
        else f"  {'steps':>5}  {label:>18}")
  for s, row in table.items():
    m, h = row[metric]
    line = f"  {s:>5}  {m:>8.4f} +/- {h:.4f}"
    if "query_accuracy" in row:
      a, ah = row["query_accuracy"]
      line += f"  {a:>8.4f} +/- {ah:.4f}"
    print(line)
  results = {
      "config": config,
      "meta_test": {str(s): {k: {"mean": v[0], "ci95": v[1]} for k, v in row.items()}
                    for s, row in table.items()},
      "timing": {"train_s": train_s, "first_block_s": compile_s, "eval_s": eval_s,
                 "meta_steps_per_s": args.iterations / train_s if train_s > 0 else None},
      **run_info(state),
  }
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  png = os.path.join(args.out, "adaptation.png")
  if args.task == "sinusoid":
    plot_sinusoid_adaptation(learner, state.meta_params, model.apply, test_family, k_plot, png,
                             steps=(1, 10))
  else:
    plot_loss_curve(table, metric, png, title=f"{args.algo} on {args.task}: meta-test {label}")
  print(f"\nwrote {args.out}/metrics.jsonl, results.json, adaptation.png"
        f" (train {train_s:.1f} s, meta-test {eval_s:.1f} s)")
  return 0
