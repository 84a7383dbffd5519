"""The ``jmeta`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

ALGOS = ("maml", "fomaml", "meta-sgd", "anil", "reptile")
TASKS = ("sinusoid", "linear", "logistic")


def _positive_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if v < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
  return v


def _non_negative_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
  if v < 0:
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
  return v


def _positive_float(text: str) -> float:
  try:
    v = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
  if not v > 0:
    raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
  return v


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
  train.add_argument("--algo", choices=ALGOS, default="maml", help="meta-learner (default: maml)")
  train.add_argument("--task", choices=TASKS, default="sinusoid", help="synthetic task family")
  train.add_argument("--shots", type=_positive_int, default=10, help="support examples per task")
  train.add_argument("--queries", type=_positive_int, default=None,
                     help="query examples per training task (default: = shots)")
  train.add_argument("--inner-steps", type=_non_negative_int, default=None,
                     help="inner adaptation steps (default 1; 5 for reptile)")
  train.add_argument("--inner-lr", type=_positive_float, default=0.01, help="inner learning rate")
  train.add_argument("--inner-opt", choices=("sgd", "adam"), default="sgd", help="inner optimizer")
  train.add_argument("--meta-batch", type=_positive_int, default=25, help="tasks per meta-step")
  train.add_argument("--meta-lr", type=_positive_float, default=1e-3, help="outer Adam learning rate")
  train.add_argument("--iterations", type=_non_negative_int, default=20000, help="meta-steps")
  train.add_argument("--seed", type=int, default=0, help="random seed")
  train.add_argument("--first-order", action="store_true", help="drop second-order terms")
  train.add_argument("--clip-norm", type=_positive_float, default=None, help="clip meta-gradient norm")
  train.add_argument("--eval-tasks", type=_positive_int, default=1000, help="meta-test tasks")
  train.add_argument("--eval-queries", type=_positive_int, default=100,
                     help="query points per meta-test task")
  train.add_argument("--eval-steps", type=_int_list, default=(0, 1, 5, 10),
                     help="adaptation steps to meta-test, comma-separated")
  train.add_argument("--log-every", type=_positive_int, default=500, help="meta-steps per log line")
  train.add_argument("--out", default=None, help="output folder (default runs/<timestamp>)")
  train.add_argument("--no-progress", action="store_true", help="no progress bar")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Entry point of the ``jmeta`` console script; returns the exit code."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.out is None:
    args.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}"
  if args.command == "train":
    from jmeta import _train_synthetic
    try:
      return _train_synthetic.run(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
      parser.exit(2, f"jmeta train: error: {e}\n")
  return 2


if __name__ == "__main__":
  sys.exit(main())
