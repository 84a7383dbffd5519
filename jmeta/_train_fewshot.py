"""``jmeta train --dataset omniglot``: few-shot image classification on real data.

Meta-trains a learner with episodes drawn on device inside the compiled
meta-step, validates periodically on held-out classes and keeps the best
meta-parameters, then meta-tests on the test classes with a 95% confidence
interval. Writes ``metrics.jsonl`` (one record per block of meta-steps) and
``results.json`` (numbers, configuration, timings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

import jmeta
from jmeta.models._conv import ConvBody, ConvNet
from jmeta.tasks._episodes import sample_episodes
from jmeta._train_synthetic import run_info

GRADIENT_BASED = ("maml", "fomaml", "meta-sgd", "anil", "reptile", "maml++")
METRIC = ("protonet", "matching", "r2d2")
FEWSHOT_ALGOS = GRADIENT_BASED + METRIC


class Setup(NamedTuple):
  """What a few-shot run needs besides the data."""

  learner: jmeta.MetaLearner
  params: Any
  outer_opt: optax.GradientTransformation
  inner_steps: int
  config: dict[str, Any]


def default_inner(algo: str, ways: int) -> tuple[int, float]:
  """Finn et al.'s Omniglot inner loop: 1 step of 0.4 (5-way), 5 steps of 0.1 (20-way)."""
  if algo == "reptile":
    return 5, 1e-3  # Nichol et al.: Adam (beta1 = 0), 5 steps of 1e-3
  if algo == "maml++":
    return 5, 0.1  # Antoniou et al.: 5 steps, learned rates initialised at 0.1
  return (1, 0.4) if ways <= 5 else (5, 0.1)


def make_setup(args: argparse.Namespace, key: jax.Array, image_shape: tuple[int, ...]) -> Setup:
  """Builds the model, the learner and the outer optimizer named by ``args``."""
  algo, ways = args.algo, args.ways
  steps0, lr0 = default_inner(algo, ways)
  steps = steps0 if args.inner_steps is None else args.inner_steps
  lr = lr0 if args.inner_lr is None else args.inner_lr
  meta_lr = args.meta_lr if args.meta_lr is not None else (1.0 if algo == "reptile" else 1e-3)
  x = jnp.zeros((2, *image_shape), jnp.float32)
  config = {"inner_steps": steps, "inner_lr": lr, "meta_lr": meta_lr}
  if algo in METRIC:
    body = ConvBody(hidden=args.hidden)
    params = body.init(key, x)
    if algo == "protonet":
      learner = jmeta.algorithms.protonet(body.apply, ways=ways)
    elif algo == "matching":
      learner = jmeta.algorithms.matching_networks(body.apply, ways=ways)
    else:
      learner = jmeta.algorithms.r2d2(body.apply, ways=ways, init_scale=args.r2d2_init_scale)
      config["r2d2_init_scale"] = args.r2d2_init_scale
    config.update(inner_steps=0, inner_lr=None)
    return Setup(learner, params, optax.adam(meta_lr), 0, config)

  net = ConvNet(ways=ways, hidden=args.hidden)
  params = net.init(key, x)
  loss_fn = jmeta.cross_entropy_loss(net.apply)
  inner = (optax.adam(lr, b1=0.0) if algo == "reptile" or args.inner_opt == "adam"
           else optax.sgd(lr))
  first_order = bool(getattr(args, "first_order", False))
  # Training logs the query loss and accuracy after adaptation only: the
  # pre-adaptation query pass would add ~30% to a conv meta-step's FLOPs.
  lean = dict(metrics_before=False)
  if algo == "maml":
    learner = jmeta.maml(loss_fn, inner, steps=steps, first_order=first_order, **lean)
  elif algo == "fomaml":
    learner = jmeta.fomaml(loss_fn, inner, steps=steps, **lean)
  elif algo == "meta-sgd":
    learner = jmeta.meta_sgd(loss_fn, steps=steps, init_lr=lr, first_order=first_order, **lean)
  elif algo == "anil":
    learner = jmeta.anil(loss_fn, inner, steps=steps, first_order=first_order,
                         adapt=lambda p: jmeta.path_mask(p, "head"), **lean)
  elif algo == "reptile":
    learner = jmeta.reptile(loss_fn, inner, steps=steps, **lean)
  elif algo == "maml++":
    from jmeta.algorithms._maml_plus_plus import maml_plus_plus
    learner = maml_plus_plus(loss_fn, steps=steps, init_lr=lr,
                             per_step=lambda p: jmeta.path_mask(p, "norm"),
                             # Antoniou et al.: first order for 50 of 100 epochs, multi-step
                             # loss annealed over the first 15.
                             first_order_steps=args.iterations // 2,
                             multi_step_steps=args.iterations * 15 // 100)
  else:
    raise ValueError(f"--algo must be one of {', '.join(FEWSHOT_ALGOS)}; got {algo!r}")
  outer = optax.sgd(meta_lr) if algo == "reptile" else optax.adam(meta_lr)
  return Setup(learner, params, outer, steps, config)


def make_validator(learner: jmeta.MetaLearner, classes: jax.Array, *, ways: int, shots: int,
                   queries: int, episodes: int, batch: int, steps: int) -> Callable:
  """A compiled ``validate(meta_params, key) -> mean query accuracy`` over ``episodes``."""
  chunks = max(1, math.ceil(episodes / batch))

  def one_chunk(mp, key):
    tasks = sample_episodes(key, classes, ways=ways, shots=shots, queries=queries, batch=batch)
    _, metrics = jax.vmap(lambda t: learner.task_loss(mp, t, 0, steps=steps))(tasks)
    return jnp.mean(metrics["query_accuracy"])

  @jax.jit
  def validate(mp, key):
    return jnp.mean(jax.lax.map(lambda k: one_chunk(mp, k), jax.random.split(key, chunks)))

  return validate


def run(args: argparse.Namespace) -> int:
  """Meta-trains and meta-tests on Omniglot; writes ``metrics.jsonl`` and ``results.json``."""
  from jmeta.data import load_omniglot

  if args.dataset != "omniglot":
    raise ValueError(f"--dataset must be omniglot; got {args.dataset!r}")
  if args.algo not in FEWSHOT_ALGOS:
    raise ValueError(f"--algo {args.algo} is not available for --dataset omniglot; choose one of"
                     f" {', '.join(FEWSHOT_ALGOS)}")
  if args.data_dir is None:
    raise ValueError("--dataset omniglot needs --data-dir: a folder holding images_background.zip"
                     " and images_evaluation.zip")
  data_dir = os.path.expanduser(args.data_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"--data-dir {data_dir} does not exist; it must hold"
                            " images_background.zip and images_evaluation.zip")
  manual_dir = data_dir if os.path.isfile(os.path.join(data_dir, "images_background.zip")) else None
  tfds_dir = args.tfds_dir or (data_dir if os.access(data_dir, os.W_OK)
                               else os.path.join(os.path.expanduser("~"), ".cache", "jmeta"))
  os.makedirs(tfds_dir, exist_ok=True)
  ways, shots = args.ways, args.shots
  queries = args.queries if args.queries is not None else (15 if ways <= 5 else 5)

  t_load = time.time()
  config = None
  if args.archive_check == "layout":
    from jmeta.data import OmniglotConfig
    config = OmniglotConfig(name="layout_only", expected_counts={"images_background": None,
                                                                 "images_evaluation": None})
  splits = load_omniglot(tfds_dir, manual_dir=manual_dir, split=args.split, rotations=True,
                         num_valid=args.num_valid, download=False, config=config)
  load_s = time.time() - t_load
  image_shape = tuple(splits.train.shape[2:])
  # Shape checks of the data layer (ways > classes, shots + queries > examples) before compiling.
  for name, classes in (("train", splits.train), ("test", splits.test)):
    try:
      sample_episodes(jax.random.key(0), classes, ways=ways, shots=shots, queries=queries, batch=1)
    except ValueError as e:
      raise ValueError(f"the {name} split cannot make {ways}-way {shots}-shot episodes with"
                       f" {queries} queries per class: {e}") from None
  has_valid = splits.valid.shape[0] >= ways and args.val_episodes > 0

  key = jax.random.key(args.seed)
  k_init, k_meta, k_train, k_val, k_test = jax.random.split(key, 5)
  setup = make_setup(args, k_init, image_shape)
  step = jmeta.make_meta_step(setup.learner, setup.outer_opt, clip_norm=args.clip_norm,
                              task_map=args.task_map,
                              chunk_size=args.meta_batch if args.task_map == "chunked" else None)
  state = step.init(k_meta, setup.params)
  eval_steps = tuple(args.eval_steps) if args.eval_steps else (setup.inner_steps,)
  validate = (make_validator(setup.learner, splits.valid, ways=ways, shots=shots, queries=queries,
                             episodes=args.val_episodes, batch=min(args.val_episodes, 50),
                             steps=setup.inner_steps) if has_valid else None)

  def sample_train(k, n):
    return sample_episodes(k, splits.train, ways=ways, shots=shots, queries=queries, batch=n)

  os.makedirs(args.out, exist_ok=True)
  config = {k: v for k, v in vars(args).items()
            if k not in ("command", "no_progress", "task", "eval_queries", "eval_tasks")}
  config.update(setup.config, queries=queries, eval_steps=list(eval_steps),
                image_shape=list(image_shape),
                classes={"train": splits.train.shape[0], "valid": splits.valid.shape[0],
                         "test": splits.test.shape[0]})
  budget = args.time_budget
  print(f"jmeta train: {args.algo} on Omniglot {ways}-way {shots}-shot ({queries} queries/class),"
        f" meta-batch {args.meta_batch}, up to {args.iterations} meta-steps"
        + (f" or {budget:g} s" if budget else "") + f" -> {args.out}", flush=True)

  best = {"accuracy": -1.0, "step": 0, "meta_params": state.meta_params}
  t0 = time.time()
  first_block_s, val_s, done = None, 0.0, 0
  with open(os.path.join(args.out, "metrics.jsonl"), "w") as log:
    for state, record in jmeta.fit(step, state, sample_train, key=k_train,
                                   iterations=args.iterations, meta_batch=args.meta_batch,
                                   log_every=args.log_every):
      if first_block_s is None:
        first_block_s = time.time() - t0
      done = record["step"]
      # The budget counts from the end of the first block (mostly compilation).
      over = budget is not None and time.time() - t0 - first_block_s >= budget
      last = over or done >= args.iterations
      if validate is not None and (done % args.val_every < args.log_every or last):
        tv = time.time()
        acc = float(validate(state.meta_params, jax.random.fold_in(k_val, done)))
        val_s += time.time() - tv
        record["val_accuracy"] = acc
        if acc > best["accuracy"]:
          best = {"accuracy": acc, "step": done, "meta_params": state.meta_params}
      record["time_s"] = round(time.time() - t0, 3)
      log.write(json.dumps(record) + "\n")
      log.flush()
      if not args.no_progress:
        val = f" val acc {record['val_accuracy']:.4f}" if "val_accuracy" in record else ""
        print(f"  step {done:>6}  {record['time_s']:8.1f} s  query loss {record['query_loss']:.4f}"
              f"  acc {record.get('query_accuracy', float('nan')):.4f}{val}", flush=True)
      if over:
        break
  train_s = time.time() - t0
  meta_params = best["meta_params"] if validate is not None else state.meta_params

  def sample_test(k, n):
    return sample_episodes(k, splits.test, ways=ways, shots=shots, queries=queries, batch=n)

  t1 = time.time()
  table = jmeta.evaluate(setup.learner, meta_params, sample_test, k_test,
                         num_tasks=args.eval_episodes, steps=eval_steps,
                         batch_size=min(args.eval_episodes, 50))
  eval_s = time.time() - t1
  print(f"\nmeta-test on {args.eval_episodes} episodes of the {splits.test.shape[0]} test classes"
        + (f" (meta-parameters of step {best['step']}, best validation accuracy"
           f" {best['accuracy']:.4f})" if validate is not None else "") + ":")
  for s, row in table.items():
    m, h = row["query_accuracy"]
    label = f"{s} steps: " if args.algo in GRADIENT_BASED else ""
    print(f"  {label}accuracy {100 * m:.2f} +/- {100 * h:.2f} %")
  results = {
      "config": config,
      "meta_test": {str(s): {k: {"mean": v[0], "ci95": v[1]} for k, v in row.items()}
                    for s, row in table.items()},
      "accuracy": table[eval_steps[0]]["query_accuracy"][0],
      "ci95": table[eval_steps[0]]["query_accuracy"][1],
      "meta_steps": done,
      "best_val": ({"accuracy": best["accuracy"], "step": best["step"]}
                   if validate is not None else None),
      "timing": {"load_s": load_s, "train_s": train_s, "first_block_s": first_block_s,
                 "validation_s": val_s, "eval_s": eval_s,
                 "meta_steps_per_s": done / train_s if train_s > 0 else None},
      **run_info(state),
  }
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"\nwrote {args.out}/metrics.jsonl, results.json ({done} meta-steps, train {train_s:.1f} s,"
        f" meta-test {eval_s:.1f} s)")
  return 0
