"""The ``jmeta`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

ALGOS = ("maml", "fomaml", "meta-sgd", "anil", "reptile")
FEWSHOT_ONLY = ("maml++", "protonet", "matching", "r2d2")  # --dataset omniglot
# Defaults that differ between the synthetic families and --dataset omniglot.
DEFAULTS = {
    None: {"shots": 10, "inner_lr": 0.01, "meta_batch": 25, "iterations": 20000,
           "eval_steps": (0, 1, 5, 10), "log_every": 500},
    "omniglot": {"shots": 1, "inner_lr": None, "meta_batch": 32, "iterations": 60000,
                 "eval_steps": None, "log_every": 100},
}
TASKS = ("sinusoid", "linear", "logistic")


def _bounded(cast, ok, what: str):
  """An argparse type: ``cast(text)`` that must satisfy ``ok``, else ``expected {what}``."""

  def parse(text: str):
    try:
      v = cast(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
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


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of ``jmeta``."""
  parser = argparse.ArgumentParser(
      prog="jmeta", description="Meta-learning in JAX: meta-train and meta-test a learner.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  train = sub.add_parser(
      "train", help="meta-train a learner, then meta-test it",
      description="Meta-trains a learner and meta-tests it on held-out tasks. With no"
      " arguments: MAML on 10-shot sinusoid regression (Finn et al. 2017).")
  train.add_argument("--algo", choices=ALGOS + FEWSHOT_ONLY, default="maml",
                     help="meta-learner (default: maml); maml++, protonet, matching, r2d2 need"
                     " --dataset omniglot")
  train.add_argument("--task", choices=TASKS, default="sinusoid", help="synthetic task family")
  train.add_argument("--shots", type=_positive_int, default=None,
                     help="support examples per task (per class with --dataset; default 10, 1)")
  train.add_argument("--queries", type=_positive_int, default=None,
                     help="query examples per training task (default: = shots)")
  train.add_argument("--inner-steps", type=_non_negative_int, default=None,
                     help="inner adaptation steps (default 1; 5 for reptile)")
  train.add_argument("--inner-lr", type=_positive_float, default=None,
                     help="inner learning rate (default 0.01; Omniglot: 0.4 5-way, 0.1 20-way)")
  train.add_argument("--inner-opt", choices=("sgd", "adam"), default="sgd", help="inner optimizer")
  train.add_argument("--meta-batch", type=_positive_int, default=None,
                     help="tasks per meta-step (default 25; Omniglot 32)")
  train.add_argument("--meta-lr", type=_positive_float, default=None,
                     help="outer Adam learning rate (default 1e-3; reptile on Omniglot: SGD 1.0)")
  train.add_argument("--iterations", type=_non_negative_int, default=None,
                     help="meta-steps (default 20000; Omniglot 60000)")
  train.add_argument("--seed", type=int, default=0, help="random seed")
  train.add_argument("--first-order", action="store_true", help="drop second-order terms")
  train.add_argument("--clip-norm", type=_positive_float, default=None, help="clip meta-gradient norm")
  train.add_argument("--eval-tasks", type=_positive_int, default=1000, help="meta-test tasks")
  train.add_argument("--eval-queries", type=_positive_int, default=100,
                     help="query points per meta-test task")
  train.add_argument("--eval-steps", type=_int_list, default=None,
                     help="adaptation steps to meta-test, comma-separated (default 0,1,5,10;"
                     " Omniglot: the training steps)")
  train.add_argument("--log-every", type=_positive_int, default=None,
                     help="meta-steps per log line (default 500; Omniglot 100)")
  fewshot = train.add_argument_group("few-shot image classification (--dataset)")
  fewshot.add_argument("--dataset", choices=("omniglot",), default=None,
                       help="real few-shot data instead of a synthetic --task")
  fewshot.add_argument("--data-dir", default=None,
                       help="folder holding images_background.zip and images_evaluation.zip")
  fewshot.add_argument("--tfds-dir", default=None,
                       help="where the dataset is prepared (default --data-dir if writable, else"
                       " ~/.cache/jmeta)")
  fewshot.add_argument("--split", choices=("vinyals", "lake"), default="vinyals",
                       help="class split (default vinyals; rotations are added as classes)")
  fewshot.add_argument("--num-valid", type=_non_negative_int, default=None,
                       help="validation characters (vinyals, default 100) or alphabets (lake, 5)")
  fewshot.add_argument("--archive-check", choices=("counts", "layout"), default="counts",
                       help="check the archives' image counts against the real dataset's, or"
                       " their layout only (for subsets)")
  fewshot.add_argument("--ways", type=_positive_int, default=5, help="classes per episode")
  fewshot.add_argument("--time-budget", type=_positive_float, default=None,
                       help="stop meta-training after this many seconds (counted after the first"
                       " compiled block of --log-every meta-steps)")
  fewshot.add_argument("--val-every", type=_positive_int, default=500,
                       help="meta-steps between validations (best meta-parameters are kept)")
  fewshot.add_argument("--val-episodes", type=_non_negative_int, default=200,
                       help="validation episodes (0: no validation)")
  fewshot.add_argument("--eval-episodes", type=_positive_int, default=600,
                       help="meta-test episodes (default 600)")
  fewshot.add_argument("--hidden", type=_positive_int, default=64, help="conv filters")
  fewshot.add_argument("--task-map", choices=("auto", "vmap", "scan", "chunked"), default="auto",
                       help="how the meta-step maps tasks")
  fewshot.add_argument("--r2d2-init-scale", type=_positive_float, default=10.0,
                       help="initial logit scale of r2d2")
  train.add_argument("--out", default=None, help="output folder (default runs/<timestamp>)")
  train.add_argument("--no-progress", action="store_true", help="no progress bar")
  train.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                     help="save meta-parameters, optimizer state, step and PRNG state to"
                     " OUT/checkpoints every N meta-steps (a multiple of --log-every), atomically")
  train.add_argument("--resume", action="store_true",
                     help="continue from the newest checkpoint in OUT/checkpoints (same options)")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Entry point of the ``jmeta`` console script; returns the exit code."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.out is None:
    args.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
  if args.command == "train":
    for name, value in DEFAULTS[args.dataset].items():
      if getattr(args, name) is None:
        setattr(args, name, value)
    from jmeta import _train_fewshot, _train_synthetic
    try:
      if args.dataset is not None:
        if args.checkpoint_every is not None or args.resume:
          raise ValueError("--checkpoint-every and --resume work with the synthetic tasks only (no --dataset)")
        return _train_fewshot.run(args)
      if args.algo in FEWSHOT_ONLY:
        raise ValueError(f"--algo {args.algo} needs --dataset omniglot")
      if args.meta_lr is None:
        args.meta_lr = 1e-3
      return _train_synthetic.run(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
      parser.exit(2, f"jmeta train: error: {e}\n")
  return 2


if __name__ == "__main__":
  sys.exit(main())
