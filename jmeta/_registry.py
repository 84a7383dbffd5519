"""The one registry of learners and task sources: names, defaults, what goes with what.

``jmeta train`` / ``jmeta eval`` (``jmeta/cli.py``), the trainer
(``jmeta/_trainer.py``) and README's tables read everything from here:

* :data:`SOURCES`: task sources by name. A synthetic family (``--task``) or a
  dataset (``--dataset``, loaded by one module under ``jmeta/data/``), with
  its task kind, its backbone network and its defaults.
* :data:`LEARNERS`: learners by name, with the task kinds they support, their
  defaults (which may depend on the source, e.g. Finn et al.'s Omniglot inner
  loop) and how to build them.

Adding a learner, a task family or a dataset means one entry here (and, for a
dataset, its loader under ``jmeta/data/``). :func:`resolve` turns the options a
user gave into the full configuration of a run (every default filled in, so
``results.json`` records the values actually used); :func:`build` turns that
configuration into the task sources, model, learner and outer optimizer.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jmeta import _losses
from jmeta import algorithms
from jmeta._base import MetaLearner
from jmeta.models import ConvBody, ConvNet, MLP, path_mask
from jmeta.tasks import _synthetic
from jmeta.tasks._sources import TaskSource, episode_source

KINDS = ("regression", "binary", "classification")
"""Task kinds: regression (MSE), binary (one logit, cross-entropy), classification (N-way).

Meta-RL task families (``jmeta.rl``) are of kind ``"rl"``: their learners
(``maml-rl``, ``rl2``) support only that kind, and the others do not support it.
"""

# Options every run takes (the CLI's flags, as ``dest`` names), and their defaults.
COMMON_DEFAULTS: Mapping[str, Any] = {
    "algo": "maml", "seed": 0, "clip_norm": None, "task_map": "auto", "time_budget": None,
    "checkpoint_every": None, "val_every": 500, "val_tasks": 200, "eval_tasks": 1000,
}
COMMON_OPTIONS = frozenset(COMMON_DEFAULTS) | {
    "shots", "queries", "meta_batch", "meta_lr", "iterations", "log_every", "eval_steps"}


def default_cache_dir() -> str:
  """Where datasets are prepared: ``$JMETA_CACHE``, else ``~/.cache/jmeta``."""
  return os.environ.get("JMETA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jmeta")


class Splits(NamedTuple):
  """The meta-train, validation and meta-test task sources of a run."""

  train: TaskSource
  valid: TaskSource
  test: TaskSource


class SourceSpec(NamedTuple):
  """A task source that ``jmeta train`` can train on.

  Attributes:
    name: the ``--task`` / ``--dataset`` name.
    kind: one of :data:`KINDS`.
    synthetic: ``--task`` (a ``TaskFamily``) rather than ``--dataset``.
    backbone: ``"mlp"`` (``jmeta.MLP()``), ``"flat-mlp"`` (an MLP of width
      ``hidden`` on flattened images) or ``"conv"`` (``jmeta.ConvNet``).
    defaults: ``defaults(cfg) -> dict`` of the source's defaults, given the
      options resolved so far (e.g. the query count depends on ``ways``).
    options: the source-specific options it accepts besides the common ones.
    splits: ``splits(cfg) -> Splits`` (loads the data).
    reference: where the task or dataset comes from.
  """

  name: str
  kind: str
  synthetic: bool
  backbone: str
  defaults: Callable[[dict], dict]
  options: frozenset
  splits: Callable[[dict], Splits]
  reference: str


class LearnerSpec(NamedTuple):
  """A learner that ``jmeta train`` can train.

  Attributes:
    name: the ``--algo`` name.
    factory: the public factory, for the docs.
    kinds: the task kinds it supports.
    embedding: a metric learner on an embedding network (no inner loop).
    defaults: ``defaults(cfg, source) -> dict`` (e.g. the inner loop).
    options: the learner-specific options it accepts.
    build: ``build(cfg, loss_fn_or_embed) -> MetaLearner``.
    reference: its paper.
  """

  name: str
  factory: str
  kinds: tuple[str, ...]
  embedding: bool
  defaults: Callable[[dict, SourceSpec], dict]
  options: frozenset
  build: Callable[[dict, Callable], MetaLearner]
  reference: str


# --------------------------------------------------------------------------- sources


def _family_splits(make: Callable[..., _synthetic.TaskFamily]) -> Callable[[dict], Splits]:
  def splits(cfg):
    held_out = make(shots=cfg["shots"], queries=cfg["eval_queries"])
    # Validation and meta-test tasks are fresh draws of the family (other keys).
    return Splits(make(shots=cfg["shots"], queries=cfg["queries"]), held_out, held_out)
  return splits


def _synthetic_defaults(cfg: dict) -> dict:
  return {"shots": 10, "queries": cfg.get("shots") or 10, "eval_queries": 100, "meta_batch": 25,
          "iterations": 20000, "log_every": 500, "val_every": 2000, "eval_tasks": 1000,
          "eval_batch": 100, "inner_lr": 0.01, "eval_steps": [0, 1, 5, 10]}


def _episode_splits(load: Callable[[dict], Any], name: str) -> Callable[[dict], Splits]:
  def splits(cfg):
    data = load(cfg)
    counts = dict(ways=cfg["ways"], shots=cfg["shots"], queries=cfg["queries"])
    # Metric learners may train on episodes of more ways (and other query counts) than they
    # are validated and tested on (Snell et al. 2017).
    train = dict(counts, ways=cfg.get("train_ways") or cfg["ways"],
                 queries=cfg.get("train_queries") or cfg["queries"])
    return Splits(episode_source(data.train, name=f"{name}/train", **train),
                  *(episode_source(getattr(data, s), name=f"{name}/{s}", **counts)
                    for s in ("valid", "test")))
  return splits


def _load_omniglot(cfg: dict):
  from jmeta.data import OmniglotConfig, load_omniglot  # pylint: disable=import-outside-toplevel
  from jmeta.data import _omniglot_archive  # pylint: disable=import-outside-toplevel
  data_dir = cfg["data_dir"]
  if data_dir is not None:
    data_dir = os.path.expanduser(data_dir)
    if os.path.isfile(data_dir):
      raise FileNotFoundError(f"--data-dir {data_dir} is a file; expected the folder holding"
                              " images_background.zip and images_evaluation.zip")
    if not os.path.isdir(data_dir):
      raise FileNotFoundError(f"--data-dir {data_dir} does not exist; it must hold"
                              " images_background.zip and images_evaluation.zip")
  tfds_dir = os.path.expanduser(cfg["tfds_dir"] or default_cache_dir())
  if os.path.isfile(tfds_dir):
    raise FileNotFoundError(f"--tfds-dir {tfds_dir} is a file; expected a folder")
  layout = None
  if cfg["archive_check"] == "layout":
    layout = OmniglotConfig(name="layout_only", expected_counts={"images_background": None,
                                                                 "images_evaluation": None})
  made = not os.path.exists(tfds_dir)
  os.makedirs(tfds_dir, exist_ok=True)
  try:
    return load_omniglot(tfds_dir, manual_dir=data_dir, split=cfg["split"], rotations=True,
                         num_valid=cfg["num_valid"], download=cfg["download"], config=layout)
  except BaseException as e:
    if made and not os.listdir(tfds_dir):  # a failed preparation leaves nothing behind
      os.rmdir(tfds_dir)
    if cfg["download"] or not isinstance(e, FileNotFoundError):
      raise
    raise FileNotFoundError(
        f"Omniglot is not prepared in --tfds-dir {tfds_dir} and its archives are not in"
        f" --data-dir {data_dir}: put images_background.zip and images_evaluation.zip (from"
        f" {_omniglot_archive.BASE_URL}) there, or pass --download to fetch them ({e})") from None


def _load_digits(cfg: dict):
  from jmeta.data._digits import load_digits  # pylint: disable=import-outside-toplevel
  return load_digits()


def _load_mnist(cfg: dict):
  from jmeta.data._mnist import load_mnist  # pylint: disable=import-outside-toplevel
  return load_mnist(cfg["tfds_dir"], cache_dir=os.path.join(default_cache_dir(), "arrays"))


def _omniglot_defaults(cfg: dict) -> dict:
  ways = cfg.get("ways") or 5
  return {"ways": 5, "shots": 1, "queries": 15 if ways <= 5 else 5, "meta_batch": 32,
          # 60,000 meta-steps are a GPU recipe: on a CPU the default run stops after 15 minutes
          # of training (then validation-best selection and the meta-test).
          "time_budget": 900.0 if jax.default_backend() == "cpu" else None,
          "iterations": 60000, "log_every": 100, "val_every": 500, "val_tasks": 200,
          "eval_tasks": 600, "eval_batch": 50, "hidden": 64, "split": "vinyals",
          "num_valid": None, "archive_check": "counts", "download": False, "data_dir": None,
          "tfds_dir": None}


def _pairs_defaults(cfg: dict) -> dict:
  return {"ways": 2, "shots": 5, "queries": 10, "meta_batch": 16, "iterations": 2000,
          "log_every": 100, "val_every": 500, "val_tasks": 200, "eval_tasks": 1000,
          "eval_batch": 100, "hidden": 64, "inner_lr": 0.1, "tfds_dir": None}


_SYNTHETIC_OPTIONS = frozenset({"task", "eval_queries"})
_DATASET_OPTIONS = frozenset({"dataset", "ways", "hidden"})

def _rl_source(name: str) -> SourceSpec:
  from jmeta.rl import _registry as rl_registry  # pylint: disable=import-outside-toplevel
  return rl_registry.source(name, SourceSpec, Splits)


def _rl_learner(name: str) -> LearnerSpec:
  from jmeta.rl import _registry as rl_registry  # pylint: disable=import-outside-toplevel
  return rl_registry.learner(name, LearnerSpec)


SOURCES: dict[str, SourceSpec] = {
    "sinusoid": SourceSpec(
        "sinusoid", "regression", True, "mlp", _synthetic_defaults, _SYNTHETIC_OPTIONS,
        _family_splits(_synthetic.sinusoid), "Finn et al. 2017, Sec. 5.1"),
    "linear": SourceSpec(
        "linear", "regression", True, "mlp", _synthetic_defaults, _SYNTHETIC_OPTIONS,
        _family_splits(_synthetic.linear_regression), "linear regression, w, b ~ N(0, 1)"),
    "logistic": SourceSpec(
        "logistic", "binary", True, "mlp", _synthetic_defaults, _SYNTHETIC_OPTIONS,
        _family_splits(_synthetic.logistic_regression), "logistic regression tasks"),
    "omniglot": SourceSpec(
        "omniglot", "classification", False, "conv", _omniglot_defaults,
        _DATASET_OPTIONS | {"data_dir", "tfds_dir", "download", "split", "num_valid",
                            "archive_check"},
        _episode_splits(_load_omniglot, "omniglot"),
        "Lake et al. 2015; Vinyals et al. 2016 splits with rotations"),
    "digits": SourceSpec(
        "digits", "classification", False, "flat-mlp", _pairs_defaults, _DATASET_OPTIONS,
        _episode_splits(_load_digits, "digits"),
        "scikit-learn's 8x8 digits (UCI); pairs of digits, held-out images"),
    "mnist": SourceSpec(
        "mnist", "classification", False, "flat-mlp", _pairs_defaults,
        _DATASET_OPTIONS | {"tfds_dir"}, _episode_splits(_load_mnist, "mnist"),
        "LeCun et al. 1998, TFDS mnist prepared locally; pairs of digits"),
    "point-nav": _rl_source("point-nav"),
    "bandit": _rl_source("bandit"),
}

# --------------------------------------------------------------------------- learners


def _inner_opt(cfg: dict) -> optax.GradientTransformation:
  if cfg["inner_opt"] == "sgd":
    return optax.sgd(cfg["inner_lr"])
  # eps_root > 0: the derivative of sqrt(nu) is infinite where a gradient is exactly zero.
  return optax.adam(cfg["inner_lr"], b1=cfg["inner_adam_b1"], eps_root=1e-8)


def _gradient_defaults(cfg: dict, source: SourceSpec) -> dict:
  algo = cfg["algo"]
  out = {"inner_opt": "sgd", "inner_adam_b1": 0.9, "first_order": False, "outer_opt": "adam",
         "meta_lr": 1e-3, "inner_steps": 5 if algo == "reptile" else 1, "lr_halve_every": None}
  if source.name == "omniglot":
    if jax.default_backend() == "cpu":
      # A CPU budget gives the MAML family a few hundred meta-steps of 32 episodes: validate
      # every 100 (not 500) so that the run keeps its best and draws a learning curve.
      out["val_every"] = 100
    # Finn et al.: 1 step of 0.4 at 5-way, 5 steps of 0.1 at 20-way.
    out.update(inner_steps=1, inner_lr=0.4) if cfg["ways"] <= 5 else out.update(
        inner_steps=5, inner_lr=0.1)
    if algo == "reptile":  # Nichol et al.: 5 steps of Adam(1e-3, beta1 = 0); outer SGD 1.0
      out.update(inner_steps=5, inner_lr=1e-3, inner_opt="adam", inner_adam_b1=0.0,
                 outer_opt="sgd", meta_lr=1.0)
    if algo == "maml++":  # Antoniou et al.: 5 steps, learned rates from 0.1
      out.update(inner_steps=5, inner_lr=0.1)
    if algo == "anil" and cfg["ways"] > 5:
      # A head-only inner loop needs a larger rate than MAML's 0.1: measured here on 20-way
      # 1-shot (60 s budget, same run otherwise), 0.1 reached 22.3% and 0.5 61.3%.
      out.update(inner_lr=0.5)
  else:
    out["inner_lr"] = source.defaults(cfg).get("inner_lr", 0.01)
  if not source.synthetic:
    out["eval_steps"] = [cfg.get("inner_steps") or out["inner_steps"]]
  if algo == "maml++":
    iterations = cfg["iterations"]
    # Antoniou et al.: first order for 50 of 100 epochs, multi-step loss annealed over 15.
    out.update(first_order_steps=iterations // 2, multi_step_steps=iterations * 15 // 100)
  return out


def _metric_defaults(cfg: dict, source: SourceSpec) -> dict:
  out = {"outer_opt": "adam", "meta_lr": 1e-3, "eval_steps": [0], "inner_steps": 0,
         "train_ways": None, "train_queries": None, "lr_halve_every": None}
  if cfg["algo"] == "r2d2":
    out["r2d2_init_scale"] = 10.0
  if source.name == "omniglot" and cfg["algo"] in ("protonet", "r2d2"):
    # Snell et al. 2017 (Omniglot): one 60-way episode per update with 5 queries per class,
    # Adam 1e-3 halved every 2,000 episodes. Bertinetto et al. 2019 train R2-D2 on 60-way
    # episodes too, with Adam 5e-3 halved every 2,000 episodes (their code,
    # github.com/bertinetto/r2d2: scripts/train/conf/fewshots.yaml and omni5_r2d2_64c.sh);
    # their 600-image episodes (random 1-9 shots, the rest queries) are not reproduced here:
    # 5 queries per class, as for ProtoNets.
    out.update(train_ways=60, train_queries=5, lr_halve_every=2000, meta_batch=1)
    if cfg["algo"] == "r2d2":
      out["meta_lr"] = 5e-3
  return out


def _lean(cfg: dict) -> dict:
  # The pre-adaptation query pass adds ~30% to a conv meta-step; training does not log it.
  return {"metrics_before": cfg["backbone"] != "conv"}


def _mask(pattern: str) -> Callable:
  return lambda p: path_mask(p, pattern)


_GRADIENT_OPTIONS = frozenset({"inner_steps", "inner_lr", "inner_opt", "first_order",
                               "lr_halve_every"})
_METRIC_OPTIONS = frozenset({"train_ways", "train_queries", "lr_halve_every"})

LEARNERS: dict[str, LearnerSpec] = {
    "maml": LearnerSpec(
        "maml", "jmeta.maml", KINDS, False, _gradient_defaults, _GRADIENT_OPTIONS,
        lambda cfg, loss: algorithms.maml(loss, _inner_opt(cfg), steps=cfg["inner_steps"],
                                          first_order=cfg["first_order"], **_lean(cfg)),
        "Finn et al. 2017"),
    "fomaml": LearnerSpec(
        "fomaml", "jmeta.fomaml", KINDS, False, _gradient_defaults,
        _GRADIENT_OPTIONS - {"first_order"},
        lambda cfg, loss: algorithms.fomaml(loss, _inner_opt(cfg), steps=cfg["inner_steps"],
                                            **_lean(cfg)),
        "Finn et al. 2017"),
    "meta-sgd": LearnerSpec(
        "meta-sgd", "jmeta.meta_sgd", KINDS, False, _gradient_defaults,
        _GRADIENT_OPTIONS,
        lambda cfg, loss: algorithms.meta_sgd(loss, steps=cfg["inner_steps"],
                                              init_lr=cfg["inner_lr"],
                                              first_order=cfg["first_order"], **_lean(cfg)),
        "Li et al. 2017"),
    "anil": LearnerSpec(
        "anil", "jmeta.anil", KINDS, False, _gradient_defaults, _GRADIENT_OPTIONS,
        lambda cfg, loss: algorithms.anil(loss, _inner_opt(cfg), steps=cfg["inner_steps"],
                                          first_order=cfg["first_order"], adapt=_mask("head"),
                                          **_lean(cfg)),
        "Raghu et al. 2020"),
    "reptile": LearnerSpec(
        "reptile", "jmeta.reptile", KINDS, False, _gradient_defaults,
        _GRADIENT_OPTIONS - {"first_order"},
        lambda cfg, loss: algorithms.reptile(loss, _inner_opt(cfg), steps=cfg["inner_steps"],
                                             **_lean(cfg)),
        "Nichol et al. 2018"),
    "maml++": LearnerSpec(
        "maml++", "jmeta.maml_plus_plus", KINDS, False, _gradient_defaults,
        frozenset({"inner_steps", "inner_lr", "lr_halve_every"}),
        lambda cfg, loss: algorithms.maml_plus_plus(
            loss, steps=cfg["inner_steps"], init_lr=cfg["inner_lr"],
            per_step=_mask("norm") if cfg["backbone"] == "conv" else None,
            first_order_steps=cfg["first_order_steps"],
            multi_step_steps=cfg["multi_step_steps"]),
        "Antoniou et al. 2019"),
    "protonet": LearnerSpec(
        "protonet", "jmeta.protonet", ("classification",), True, _metric_defaults,
        _METRIC_OPTIONS,
        lambda cfg, embed: algorithms.protonet(embed, ways=cfg["ways"]), "Snell et al. 2017"),
    "matching": LearnerSpec(
        "matching", "jmeta.matching_networks", ("classification",), True, _metric_defaults,
        _METRIC_OPTIONS, lambda cfg, embed: algorithms.matching_networks(embed, ways=cfg["ways"]),
        "Vinyals et al. 2016"),
    "r2d2": LearnerSpec(
        "r2d2", "jmeta.r2d2", ("classification",), True, _metric_defaults,
        _METRIC_OPTIONS | {"r2d2_init_scale"},
        lambda cfg, embed: algorithms.r2d2(embed, ways=cfg["ways"],
                                           init_scale=cfg["r2d2_init_scale"]),
        "Bertinetto et al. 2019"),
    "maml-rl": _rl_learner("maml-rl"),
    "rl2": _rl_learner("rl2"),
}

# --------------------------------------------------------------------------- resolve and build

# Options that describe where things are or how the run is driven, not what it computes:
# they may change between a run and its resumption.
NOT_COMPARED_ON_RESUME = frozenset({
    "out", "iterations", "resume", "checkpoint_every", "no_progress", "eval_tasks",
    "eval_steps", "eval_batch", "eval_queries", "time_budget", "data_dir", "tfds_dir",
    "download", "archive_check"})


def flag(name: str) -> str:
  """The command-line flag of an option name (``inner_lr`` -> ``--inner-lr``)."""
  return "--" + name.replace("_", "-")


def source_name(options: Mapping[str, Any]) -> str:
  """The source a run uses: ``--dataset`` if given, else ``--task`` (default sinusoid)."""
  return options.get("dataset") or options.get("task") or "sinusoid"


def resolve(options: Mapping[str, Any]) -> dict[str, Any]:
  """The full configuration of a run from the options a user set.

  Args:
    options: option name -> value, only those the user set (``None`` values
      count as not set).

  Returns:
    Every option the source and learner use, defaults filled in, plus
    ``source``, ``kind`` and ``backbone``.

  Raises:
    ValueError: an unknown source or learner, a learner that does not support
      the source's task kind, or an option that does not apply to them.
  """
  given = {k: v for k, v in options.items() if v is not None and v is not False}
  name = source_name(given)
  if name not in SOURCES:
    raise ValueError(f"unknown task source {name!r}; choose one of {', '.join(SOURCES)}")
  source = SOURCES[name]
  algo = given.get("algo", COMMON_DEFAULTS["algo"])
  if algo not in LEARNERS:
    raise ValueError(f"--algo must be one of {', '.join(LEARNERS)}; got {algo!r}")
  learner = LEARNERS[algo]
  what = f"--dataset {name}" if not source.synthetic else f"--task {name}"
  if source.kind not in learner.kinds:
    kinds = sorted(s.name for s in SOURCES.values() if s.kind in learner.kinds)
    raise ValueError(f"--algo {algo} needs a {'/'.join(learner.kinds)} task source"
                     f" ({', '.join(kinds)}); {what} is {source.kind}")
  allowed = COMMON_OPTIONS | source.options | learner.options | {"out", "resume", "no_progress"}
  extra = sorted(k for k in given if k not in allowed)
  if extra:
    raise ValueError(f"{', '.join(flag(k) for k in extra)} does not apply to --algo {algo} on"
                     f" {what}")
  cfg: dict[str, Any] = dict(COMMON_DEFAULTS)
  cfg.update(source=name, kind=source.kind, backbone=source.backbone)
  if source.synthetic:
    cfg["task"] = name
  else:
    cfg["dataset"] = name
  cfg.update(given)
  # Source defaults override the common ones, learner defaults the source's; what the user
  # set overrides them all.
  for defaults in (source.defaults, lambda c: learner.defaults(c, source)):
    cfg.update({k: v for k, v in defaults(cfg).items() if k not in given})
  if algo == "meta-sgd" and cfg.get("inner_opt", "sgd") != "sgd":
    raise ValueError("--algo meta-sgd learns its own per-parameter SGD rates; --inner-opt must"
                     " be sgd")
  cfg["eval_steps"] = [int(s) for s in cfg["eval_steps"]]
  return cfg


class Run(NamedTuple):
  """What a configuration builds: sources, model, learner and outer optimizer."""

  cfg: dict
  splits: Splits
  params: Any
  apply_fn: Callable
  learner: MetaLearner
  train_learner: MetaLearner
  outer_opt: optax.GradientTransformation
  selection: str
  make_step: Optional[Callable[[], Any]] = None  # a learner's own MetaStep (RL²'s PPO)


def _loss(kind: str, apply_fn: Callable) -> Callable:
  if kind == "regression":
    return _losses.mse_loss(apply_fn)
  if kind == "binary":
    return _losses.binary_cross_entropy_loss(apply_fn)
  return _losses.cross_entropy_loss(apply_fn)


def _network(cfg: dict, embedding: bool):
  if cfg["backbone"] == "conv":
    return ConvBody(hidden=cfg["hidden"]) if embedding else ConvNet(ways=cfg["ways"],
                                                                    hidden=cfg["hidden"])
  if cfg["backbone"] == "flat-mlp":
    h = cfg["hidden"]
    return (MLP(hidden=(h,), out=h, flatten=True) if embedding
            else MLP(hidden=(h, h), out=cfg["ways"], flatten=True))
  return MLP()


def build(cfg: dict, key: jax.Array, splits: Optional[Splits] = None) -> Run:
  """Builds the run of a resolved configuration.

  Args:
    cfg: from :func:`resolve` (or a run's ``config.json``).
    key: PRNG key of the model's initial parameters.
    splits: the task sources, if already loaded (else loaded here).

  Returns:
    A :class:`Run`.
  """
  source, spec = SOURCES[cfg["source"]], LEARNERS[cfg["algo"]]
  splits = source.splits(cfg) if splits is None else splits
  if cfg["kind"] == "rl":
    from jmeta.rl import _registry as rl_registry  # pylint: disable=import-outside-toplevel
    return Run(cfg, splits, *rl_registry.build(cfg, key, splits.train))
  example = jax.eval_shape(lambda k: splits.train.sample_batch(k, 1), jax.random.key(0))
  net = _network(cfg, spec.embedding)
  x = jnp.zeros((2, *example.support_x.shape[2:]), example.support_x.dtype)
  params = net.init(key, x)
  model = net.apply if spec.embedding else _loss(cfg["kind"], net.apply)
  learner = spec.build(cfg, model)
  train_ways = cfg.get("train_ways") or cfg.get("ways")
  train_learner = (learner if train_ways == cfg.get("ways")
                   else spec.build(dict(cfg, ways=train_ways), model))
  lr = cfg["meta_lr"]
  if cfg.get("lr_halve_every"):
    lr = optax.exponential_decay(lr, cfg["lr_halve_every"], 0.5, staircase=True)
  outer = optax.sgd(lr) if cfg["outer_opt"] == "sgd" else optax.adam(lr)
  selection = "query_loss" if cfg["kind"] == "regression" else "query_accuracy"
  return Run(cfg, splits, params, net.apply, learner, train_learner, outer, selection)
