"""The ``jmeta`` command line: ``jmeta train`` and ``jmeta eval``.

The choices and defaults come from ``jmeta._registry``; the work is done by
``jmeta._trainer``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Optional, Sequence

from jmeta import _registry


def _bounded(cast, ok, what: str):
  """An argparse type: ``cast(text)`` that must satisfy ``ok``, else ``expected {what}``."""

  def parse(text: str):
    try:
      v = cast(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
      raise argparse.ArgumentTypeError(f"expected {what} (finite), got {text!r}")
    if not ok(v):
      raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
    return v

  return parse


_positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _bounded(float, lambda v: v > 0, "a positive number")


def _int_list(text: str) -> tuple[int, ...]:
  try:
    out = tuple(int(t) for t in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
  if any(v < 0 for v in out):
    raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
  return out


def _defaults(option: str) -> str:
  """``"default: sinusoid 25, omniglot 32, ..."``, read from the registry."""
  seen: dict = {}
  for name, spec in _registry.SOURCES.items():
    value = spec.defaults({}).get(option, _registry.COMMON_DEFAULTS.get(option))
    if value is not None:
      seen.setdefault(str(value).replace(" ", ""), []).append(name)
  if not seen:
    return ""
  if len(seen) == 1:
    return f" (default {next(iter(seen))})"
  return " (default: " + "; ".join(f"{'/'.join(n)} {v}" for v, n in seen.items()) + ")"


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``jmeta``."""
  synthetic = [n for n, s in _registry.SOURCES.items() if s.synthetic]
  datasets = [n for n, s in _registry.SOURCES.items() if not s.synthetic]
  learners = ", ".join(f"{n} ({'/'.join(s.kinds) if len(s.kinds) < 3 else 'any task'})"
                       for n, s in _registry.LEARNERS.items())
  parser = argparse.ArgumentParser(
      prog="jmeta", description="Meta-learning in JAX: meta-train and meta-test a learner.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  train = sub.add_parser(
      "train", help="meta-train a learner, then meta-test it",
      description="Meta-trains a learner (with validation, checkpoints and a progress bar) and"
      " meta-tests it on held-out tasks. With no arguments: MAML on 10-shot sinusoid regression"
      " (Finn et al. 2017). Options left unset take the defaults of the task source and the"
      " learner; results.json records the values used. Options that do not apply to the"
      " chosen source or learner are errors.")
  a = train.add_argument
  a("--algo", choices=list(_registry.LEARNERS), default=None,
    help=f"meta-learner (default maml): {learners}")
  a("--task", choices=synthetic, default=None, help="synthetic task family (default sinusoid)")
  a("--dataset", choices=datasets, default=None,
    help="few-shot classification data instead of a synthetic --task: omniglot (needs"
    " --data-dir), digits (scikit-learn's 8x8 digits, pairs, no download), mnist (TFDS mnist"
    " prepared in --tfds-dir)")
  a("--shots", type=_positive_int, default=None,
    help="support examples per task (per class for a --dataset)" + _defaults("shots"))
  a("--queries", type=_positive_int, default=None,
    help="query examples per training task (per class for a --dataset; synthetic: = shots;"
    " omniglot: 15 at <= 5 ways, else 5)")
  a("--inner-steps", type=_non_negative_int, default=None,
    help="inner adaptation steps (default 1; reptile 5; omniglot: 1 at 5-way, 5 at 20-way)")
  a("--inner-lr", type=_positive_float, default=None,
    help="inner learning rate" + _defaults("inner_lr") + "; omniglot 0.4 at 5-way, 0.1 at"
    " 20-way")
  a("--inner-opt", choices=("sgd", "adam"), default=None, help="inner optimizer (default sgd)")
  a("--meta-batch", type=_positive_int, default=None,
    help="tasks per meta-step" + _defaults("meta_batch"))
  a("--meta-lr", type=_positive_float, default=None,
    help="outer Adam learning rate (default 1e-3; reptile on omniglot: SGD 1.0)")
  a("--lr-halve-every", type=_positive_int, default=None,
    help="halve the outer learning rate every N meta-steps (default: never; omniglot protonet"
    " and r2d2: 2000, Snell et al.)")
  a("--iterations", type=_non_negative_int, default=None,
    help="meta-steps" + _defaults("iterations"))
  a("--seed", type=int, default=None, help="random seed (default 0)")
  a("--first-order", action="store_true", default=None, help="drop second-order terms")
  a("--clip-norm", type=_positive_float, default=None, help="clip the meta-gradient's norm")
  a("--eval-tasks", "--eval-episodes", dest="eval_tasks", type=_positive_int, default=None,
    help="meta-test tasks (episodes)" + _defaults("eval_tasks"))
  a("--eval-queries", type=_positive_int, default=None,
    help="query points per meta-test task (synthetic tasks; default 100)")
  a("--eval-steps", type=_int_list, default=None,
    help="adaptation steps to meta-test, comma-separated (default 0,1,5,10; a --dataset: the"
    " training steps)")
  a("--log-every", type=_positive_int, default=None,
    help="meta-steps per compiled block and per metrics.jsonl record" + _defaults("log_every"))
  a("--val-every", type=_positive_int, default=None,
    help="meta-steps between validations on held-out tasks; the best meta-parameters are"
    " kept" + _defaults("val_every"))
  a("--val-tasks", "--val-episodes", dest="val_tasks", type=_non_negative_int, default=None,
    help="validation tasks (0: no validation; the final meta-parameters are meta-tested)"
    + _defaults("val_tasks"))
  a("--time-budget", type=_positive_float, default=None,
    help="stop meta-training at the block boundary nearest this many seconds of training"
    " (compiling blocks excluded;"
    " summed over resumed runs; default: none, omniglot on a CPU 900)")
  a("--task-map", choices=("auto", "vmap", "scan", "chunked"), default=None,
    help="how the meta-step maps tasks (default auto)")
  a("--out", default=None, help="output folder (default runs/<timestamp>)")
  a("--no-progress", action="store_true", default=None, help="no progress bar")
  a("--checkpoint-every", type=_positive_int, default=None, metavar="N",
    help="save meta-parameters, optimizer state, step, PRNG state and the best meta-parameters"
    " to OUT/checkpoints every N meta-steps (a multiple of --log-every) and at the end,"
    " atomically")
  a("--resume", action="store_true", default=None,
    help="continue from the newest checkpoint in OUT/checkpoints (same options; --iterations"
    " and --time-budget may grow)")
  few = train.add_argument_group("few-shot classification (--dataset)")
  f = few.add_argument
  f("--ways", type=_positive_int, default=None, help="classes per episode" + _defaults("ways"))
  f("--hidden", type=_positive_int, default=None,
    help="conv filters, MLP width, or the meta-RL policy's width (GRU units for rl2)"
    + _defaults("hidden"))
  f("--data-dir", default=None,
    help="omniglot: folder holding images_background.zip and images_evaluation.zip")
  f("--tfds-dir", default=None,
    help="where the dataset is prepared / found (default ~/.cache/jmeta or $JMETA_CACHE); never"
    " the archives' folder")
  f("--download", action="store_true", default=None,
    help="omniglot: download archives missing from --data-dir (needs network)")
  f("--split", choices=("vinyals", "lake"), default=None,
    help="omniglot class split (default vinyals; rotations are added as classes)")
  f("--num-valid", type=_non_negative_int, default=None,
    help="omniglot validation characters (vinyals, default 100) or alphabets (lake, 5)")
  f("--archive-check", choices=("counts", "layout"), default=None,
    help="omniglot: check the archives' image counts against the real dataset's (default), or"
    " their layout only (for subsets)")
  f("--train-ways", type=_positive_int, default=None,
    help="metric learners: classes per training episode (default --ways; omniglot protonet and"
    " r2d2: 60, Snell et al.)")
  f("--train-queries", type=_positive_int, default=None,
    help="metric learners: queries per class in training episodes (default --queries; omniglot"
    " protonet and r2d2: 5)")
  f("--r2d2-init-scale", type=_positive_float, default=None,
    help="initial logit scale of r2d2 (default 10)")

  meta_rl = train.add_argument_group("meta-RL (--task point-nav: maml-rl; --task bandit: rl2)")
  r = meta_rl.add_argument
  r("--trajectories", type=_positive_int, default=None,
    help="point-nav: episodes per task per rollout" + _defaults("trajectories"))
  r("--outer-objective", choices=("dice", "promp"), default=None,
    help="maml-rl's outer update: one optax step on the DiCE meta-gradient (default), or ProMP's"
    " clipped objective (5 optax steps per batch, Rothfuss et al. 2019)")
  r("--arms", type=_positive_int, default=None, help="bandit: arms k" + _defaults("arms"))
  r("--pulls", type=_positive_int, default=None,
    help="bandit: pulls n per trial" + _defaults("pulls"))
  r("--entropy-coef", type=_bounded(float, lambda v: v >= 0, "a number >= 0"), default=None,
    help="rl2: weight of PPO's entropy bonus" + _defaults("entropy_coef"))

  ev = sub.add_parser(
      "eval", help="meta-test a trained (or interrupted) run",
      description="Reloads the best (or final) meta-parameters of a `jmeta train` run folder"
      " (or its newest checkpoint) and meta-tests them; prints the table with 95% CIs and"
      " writes RUN_DIR/eval.json. With the run's own settings it reproduces its meta-test.")
  e = ev.add_argument
  e("run_dir", metavar="RUN_DIR", help="the --out folder of `jmeta train`")
  e("--which", choices=("best", "final"), default="best",
    help="validation-best (default) or final meta-parameters")
  e("--tasks", "--episodes", dest="tasks", type=_positive_int, default=None,
    help="meta-test tasks (default: the run's --eval-tasks)")
  e("--steps", type=_int_list, default=None,
    help="adaptation steps, comma-separated (default: the run's --eval-steps)")
  e("--split", choices=("test", "valid"), default="test", help="meta-test or validation split")
  e("--seed", type=int, default=None, help="seed of the meta-test tasks (default: the run's)")
  e("--ways", type=_positive_int, default=None,
    help="classes per episode (metric learners may change it)")
  e("--shots", type=_positive_int, default=None, help="support examples per class")
  e("--queries", type=_positive_int, default=None, help="query examples per class")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Entry point of the ``jmeta`` console script; returns the exit code."""
  parser = build_parser()
  args = parser.parse_args(argv)
  from jmeta import _trainer  # pylint: disable=import-outside-toplevel
  from jmeta._checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  try:
    if args.command == "train":
      options = {k: v for k, v in vars(args).items() if k != "command"}
      if options["out"] is None:
        options["out"] = f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
      return _trainer.train(options, progress=not options.pop("no_progress"))
    overrides = {"ways": args.ways, "shots": args.shots, "queries": args.queries}
    _trainer.evaluate_run(args.run_dir, which=args.which, tasks=args.tasks,
                          steps=list(args.steps) if args.steps else None, split=args.split,
                          seed=args.seed, overrides=overrides)
    return 0
  except (ValueError, TypeError, FileNotFoundError, CheckpointError) as e:
    parser.exit(2, f"jmeta {args.command}: error: {e}\n")
  return 2


if __name__ == "__main__":
  sys.exit(main())
