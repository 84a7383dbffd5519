"""The one trainer behind ``jmeta train`` and ``jmeta eval``, for every task source.

A run is a folder ``OUT/``:

* ``config.json``: the resolved configuration (every default filled in, see
  ``jmeta._registry.resolve``), enough to rebuild the learner;
* ``metrics.jsonl``: one record per block of compiled meta-steps (means of the
  step's metrics, validation score when validated, wall time);
* ``checkpoints/<step>``: with ``checkpoint_every``, the ``MetaState``, the
  task-stream key, the best meta-parameters so far and the training time
  (orbax, atomic, the two newest kept);
* ``model/final`` and ``model/best``: the final and the validation-best
  meta-parameters (orbax);
* ``results.json``: the meta-test table with 95% CIs, timings, versions;
* ``eval.json``: written by ``jmeta eval``.

Training runs ``jmeta.fit`` (blocks of ``log_every`` meta-steps, each one
compiled ``lax.scan`` drawing its task batches on device) with a progress bar,
validation every ``val_every`` meta-steps on held-out tasks (the best
meta-parameters are kept), a time budget and checkpoint/resume, whatever the
task source.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np
import optax

from jmeta import _checkpoint
from jmeta import _registry
from jmeta._fit import fit
from jmeta._meta_step import MetaState, make_meta_step
from jmeta.evaluation import evaluate


class RunKeys(NamedTuple):
  """The PRNG keys of a run, all derived from its seed."""

  init: jax.Array
  meta: jax.Array
  train: jax.Array
  valid: jax.Array
  test: jax.Array
  plot: jax.Array


def run_keys(seed: int) -> RunKeys:
  """The keys of the run with ``seed`` (the same for ``train`` and ``eval``)."""
  return RunKeys(*jax.random.split(jax.random.key(seed), len(RunKeys._fields)))


def check_out(out: str, *, resume: bool) -> None:
  """Refuses an ``--out`` that is a file, or a folder that holds a finished run.

  Raises:
    ValueError: ``out`` is a file, or holds ``results.json`` or checkpoints and
      ``resume`` is off.
  """
  if os.path.exists(out) and not os.path.isdir(out):
    raise ValueError(f"--out {out} is a file; expected a folder for the run (it is created)")
  if resume:
    return
  if os.path.isfile(os.path.join(out, "results.json")):
    raise ValueError(f"--out {out} holds a finished run (results.json); choose another --out,"
                     " or pass --resume to train it longer")
  if _checkpoint.latest_step(os.path.join(out, "checkpoints")) is not None:
    raise ValueError(f"{os.path.join(out, 'checkpoints')} already holds checkpoints: pass --resume"
                     " to continue that run, or choose another --out")


def described(cfg: dict) -> dict:
  """The part of a configuration that a resumed run must share with the original."""
  keep = {k: v for k, v in cfg.items() if k not in _registry.NOT_COMPARED_ON_RESUME}
  return json.loads(json.dumps(keep, default=str))


def run_info(state: MetaState) -> dict:
  """What every ``results.json`` records besides the figures: skips, versions, backend."""
  import jmeta  # pylint: disable=import-outside-toplevel
  return {
      "skipped_meta_steps": int(state.skipped),
      "versions": {"jmeta": jmeta.__version__, "jax": jax.__version__, "optax": optax.__version__,
                   "python": platform.python_version()},
      "backend": jax.default_backend(),
  }


def meta_test(run: _registry.Run, meta_params: Any, source: Any, key: jax.Array, *,
              num_tasks: int, steps: tuple[int, ...]) -> dict[int, dict[str, tuple[float, float]]]:
  """``jmeta.evaluate`` of a run's learner on ``source`` (meta-test, validation, ``eval``)."""
  return evaluate(run.learner, meta_params, source.sample_batch, key, num_tasks=num_tasks,
                  steps=tuple(steps), batch_size=min(num_tasks, run.cfg["eval_batch"]))


def _score(run: _registry.Run, table: dict) -> float:
  """Validation score (higher is better): accuracy or return, or minus the query loss."""
  mean = table[next(iter(table))][run.selection][0]
  return mean if run.selection in ("query_accuracy", "return") else -mean


def _shown(run: _registry.Run, score: float) -> float:
  """The validation metric of a score (a loss is minus its score)."""
  return score if run.selection in ("query_accuracy", "return") else -score


def _scalar(x: float | int) -> np.ndarray:
  """A 0-d float64 array (what the checkpoint stores for scores, steps and seconds)."""
  return np.asarray(x, np.float64)


def _model_dir(out: str, which: str) -> str:
  return os.path.abspath(os.path.join(out, "model", which))


def save_model(out: str, which: str, meta_params: Any) -> None:
  """Saves meta-parameters as ``OUT/model/<which>`` (orbax; replaces an older save)."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(_model_dir(out, which), meta_params, force=True)
    ckpt.wait_until_finished()


def describe(source: dict) -> str:
  """``"omniglot/test (ways 5, shots 1, ...)"`` from a source's ``describe()``."""
  rest = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in source.items() if k != "name")
  return f"{source.get('name', 'tasks')} ({rest})" if rest else str(source.get("name"))


def _print(*args: Any) -> None:
  print(*args, flush=True)


def table_lines(cfg: dict, table: dict) -> list[str]:
  """The meta-test table as printed by ``jmeta train`` and ``jmeta eval``."""
  loss = {"regression": "MSE", "binary": "cross-entropy", "classification": "cross-entropy",
          "rl": "return"}
  lines = [f"  {'steps':>5}  {loss[cfg['kind']]:>18}" + ("  accuracy (%)" if cfg["kind"] not in ("regression", "rl") else "")]
  for s, row in table.items():
    m, h = row["return" if cfg["kind"] == "rl" else "query_loss"]
    line = f"  {s:>5}  {m:>8.4f} +/- {h:.4f}"
    if "query_accuracy" in row:
      a, ah = row["query_accuracy"]
      line += f"  {100 * a:6.2f} +/- {100 * ah:.2f}"
    lines.append(line)
  return lines


def _table_json(table: dict) -> dict:
  return {str(s): {k: {"mean": v[0], "ci95": v[1]} for k, v in row.items()}
          for s, row in table.items()}


def train(options: dict[str, Any], *, progress: bool = True,
          log: Callable[..., None] = _print) -> int:
  """Meta-trains and meta-tests the run that ``options`` describe; writes ``OUT/``.

  Args:
    options: the options the user set (``None`` for unset), as
      ``jmeta._registry.resolve`` takes them, plus ``out`` and ``resume``.
    progress: show a progress bar (tqdm) with the live meta-loss.
    log: prints one line.

  Returns:
    The exit code: 0, or 1 when the run ended on non-finite meta-steps.
  """
  from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

  out, resume = options["out"], bool(options.get("resume"))
  cfg = _registry.resolve(options)
  if cfg["checkpoint_every"] is not None and cfg["checkpoint_every"] % cfg["log_every"]:
    raise ValueError(f"--checkpoint-every ({cfg['checkpoint_every']}) must be a multiple of"
                     f" --log-every ({cfg['log_every']}) so that checkpoints fall on block"
                     " boundaries")
  check_out(out, resume=resume)
  source = _registry.SOURCES[cfg["source"]]
  keys = run_keys(cfg["seed"])
  if not source.synthetic:
    log(f"jmeta train: loading {cfg['source']} (prepared once into a cache folder; the first"
        " time takes a minute or more)")
  t_load = time.time()
  run = _registry.build(cfg, keys.init)
  load_s = time.time() - t_load
  step = run.make_step() if run.make_step is not None else make_meta_step(
      run.train_learner, run.outer_opt, clip_norm=cfg["clip_norm"], task_map=cfg["task_map"],
      chunk_size=cfg["meta_batch"] if cfg["task_map"] == "chunked" else None)
  state = step.init(keys.meta, run.params)
  validating = cfg["val_tasks"] >= 2
  best = {"meta_params": state.meta_params, "score": _scalar(-np.inf), "step": _scalar(0),
          "train_s": _scalar(0.0)}

  os.makedirs(out, exist_ok=True)
  directory = os.path.join(out, "checkpoints")
  checkpointing = cfg["checkpoint_every"] is not None or resume
  metrics_path = os.path.join(out, "metrics.jsonl")
  if resume:
    state, best = _checkpoint.restore_checkpoint(directory, state, keys.train, described(cfg),
                                                 extra=best)
    done = int(state.step)
    lines = open(metrics_path).read().splitlines() if os.path.exists(metrics_path) else []
    with open(metrics_path, "w") as f:  # drop what a killed run logged after its checkpoint
      f.writelines(l + "\n" for l in lines if json.loads(l)["step"] <= done)
    log(f"jmeta train: resumed from {directory} at meta-step {done}")
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2, default=str)

  budget, iterations, log_every = cfg["time_budget"], cfg["iterations"], cfg["log_every"]
  sources = {s: getattr(run.splits, s).describe() for s in ("train", "valid", "test")}
  log(f"jmeta train: {cfg['algo']} on {describe(sources['train'])}, meta-batch {cfg['meta_batch']}, up to"
      f" {iterations} meta-steps" + (f" or {budget:g} s" if budget else "") + f" -> {out}")
  if int(state.step) < iterations:
    log(f"jmeta train: compiling a block of {min(log_every, iterations)} meta-steps (the first"
        " block includes compilation)")
  start = int(state.step)
  t0 = time.time()
  trained_before = float(best["train_s"])
  first_block_s, val_s, last = None, 0.0, None
  last_block_end = None
  bar = tqdm(total=iterations, initial=int(state.step), disable=not progress, unit="step",
             dynamic_ncols=True, file=sys.stderr)
  with open(metrics_path, "a" if resume else "w") as metrics_log:
    prev = int(state.step)
    for state, record in fit(step, state, run.splits.train.sample_batch, key=keys.train,
                             iterations=iterations, meta_batch=cfg["meta_batch"],
                             log_every=log_every, start=int(state.step)):
      now = time.time()
      if first_block_s is None:
        first_block_s = now - t0
      done = record["step"]
      # The budget counts training time after each process's first (compiling) block. Training
      # stops at the block boundary nearest the budget: when the next block, as long as the last
      # one, would end further past the budget than stopping now falls short of it.
      trained = trained_before + (now - t0 - first_block_s)
      block_s = 0.0 if last_block_end is None else now - last_block_end
      last_block_end = now
      over = budget is not None and trained + block_s / 2 >= budget
      finished = over or done >= iterations
      if validating and (done // cfg["val_every"] > prev // cfg["val_every"] or finished):
        tv = time.time()
        table = meta_test(run, state.meta_params, run.splits.valid, keys.valid,
                          num_tasks=cfg["val_tasks"], steps=(cfg["inner_steps"],))
        val_s += time.time() - tv
        score = _score(run, table)
        record["val_" + run.selection] = table[cfg["inner_steps"]][run.selection][0]
        if score > best["score"]:
          best.update(meta_params=state.meta_params, score=_scalar(score), step=_scalar(done))
      prev = done
      best["train_s"] = _scalar(trained)
      record["time_s"] = round(now - t0, 3)
      metrics_log.write(json.dumps(record) + "\n")
      metrics_log.flush()
      if checkpointing and ((cfg["checkpoint_every"] and done % cfg["checkpoint_every"] == 0)
                            or finished):
        _checkpoint.save_checkpoint(directory, state, keys.train, described(cfg), extra=best)
      bar.update(done - bar.n)
      postfix = ({"return": f"{record['return']:.3f}"} if "return" in record
                 else {"meta_loss": f"{record['query_loss']:.4f}"})
      if "query_accuracy" in record:
        postfix["acc"] = f"{record['query_accuracy']:.3f}"
      if "val_" + run.selection in record:
        postfix["val"] = f"{record['val_' + run.selection]:.4f}"
      bar.set_postfix(postfix)
      if record["nonfinite"]:
        bar.write(f"warning: {int(record['nonfinite'])} non-finite meta-step(s) skipped before"
                  f" step {done}" + _causes(record))
      last = record
      if over:
        break
  bar.close()
  train_s = time.time() - t0
  meta_steps = int(state.step)

  save_model(out, "final", state.meta_params)
  meta_params = best["meta_params"] if validating else state.meta_params
  save_model(out, "best", meta_params)
  t1 = time.time()
  table = meta_test(run, meta_params, run.splits.test, keys.test, num_tasks=cfg["eval_tasks"],
                    steps=tuple(cfg["eval_steps"]))
  eval_s = time.time() - t1
  chosen = (f" (meta-parameters of step {int(best['step'])}, best validation"
            f" {run.selection} {_shown(run, float(best['score'])):.4f})" if validating else "")
  log(f"\nmeta-test on {cfg['eval_tasks']} tasks of {describe(sources['test'])}{chosen}:")
  for line in table_lines(cfg, table):
    log(line)
  first = table[cfg["eval_steps"][0]]
  results = {
      "config": cfg,
      "sources": sources,
      "meta_test": _table_json(table),
      "accuracy": first["query_accuracy"][0] if "query_accuracy" in first else None,
      "ci95": first["query_accuracy"][1] if "query_accuracy" in first else None,
      "meta_steps": meta_steps,
      "best_val": ({"score": float(best["score"]), "metric": run.selection,
                    "step": int(best["step"])} if validating else None),
      "timing": {"load_s": load_s, "train_s": train_s, "first_block_s": first_block_s,
                 "validation_s": val_s, "eval_s": eval_s,
                 "trained_s_total": float(best["train_s"]),
                 "meta_steps_per_s": ((meta_steps - start) / train_s if train_s > 0 else None)},
      **run_info(state),
  }
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(results, f, indent=2, default=str)
  if cfg["source"] == "sinusoid":
    from jmeta._plots import plot_sinusoid_adaptation  # pylint: disable=import-outside-toplevel
    plot_sinusoid_adaptation(run.learner, meta_params, run.apply_fn, run.splits.test, keys.plot,
                             os.path.join(out, "adaptation.png"), steps=(1, 10))
  if cfg["source"] == "point-nav":
    from jmeta.rl import plot_nav_adaptation  # pylint: disable=import-outside-toplevel
    plot_nav_adaptation(run.learner, meta_params, run.apply_fn, run.splits.test, keys.plot,
                        os.path.join(out, "adaptation.png"), steps=(0, cfg["inner_steps"]))
  log(f"\nwrote {out}/config.json, metrics.jsonl, results.json, model/"
      + (", adaptation.png" if cfg["source"] in ("sinusoid", "point-nav") else "")
      + f" ({meta_steps} meta-steps, train {train_s:.1f} s, meta-test {eval_s:.1f} s)")
  if last is not None and (not math.isfinite(last["query_loss"]) or last["nonfinite"] > 0):
    log(f"jmeta train: error: the run ended on non-finite meta-steps: {int(state.skipped)} of"
        f" {meta_steps} meta-steps were skipped{_causes(last)}; the saved meta-parameters are"
        " those of the last finite update")
    return 1
  return 0


def _causes(record: dict) -> str:
  """The recorded causes of non-finite meta-steps in a block, if the step names them."""
  named = [f"{int(record[k])} with {k.replace('_', ' ')}" for k in ("bad_labels",)
           if record.get(k)]
  return f" ({', '.join(named)})" if named else ""


def load_run(run_dir: str, *, which: str = "best", overrides: Optional[dict[str, Any]] = None):
  """Rebuilds a run's learner and loads its meta-parameters.

  Works for finished runs (``model/best``, ``model/final``) and for
  interrupted ones (the newest checkpoint).

  Args:
    run_dir: the run's ``OUT`` folder.
    which: ``"best"`` (validation-best) or ``"final"`` meta-parameters.
    overrides: options that change the task sources of the rebuilt run
      (``ways``, ``shots``, ``queries`` where the learner allows).

  Returns:
    ``(run, meta_params)``: the rebuilt ``Run`` and the meta-parameters.

  Raises:
    FileNotFoundError: ``run_dir`` holds no run, or neither model nor
      checkpoint.
    ValueError: an override that the learner or source does not allow.
  """
  if which not in ("best", "final"):
    raise ValueError(f"which must be 'best' or 'final'; got {which!r}")
  path = os.path.join(run_dir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{run_dir} holds no jmeta run (no config.json); pass the --out"
                            " folder of `jmeta train`")
  with open(path) as f:
    cfg = json.load(f)
  trained = dict(cfg)
  overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
  if overrides:
    if cfg["kind"] != "classification":
      raise ValueError(f"{', '.join(_registry.flag(k) for k in overrides)} apply to few-shot"
                       f" classification runs; {run_dir} is a {cfg['kind']} run")
    spec = _registry.LEARNERS[cfg["algo"]]
    if "ways" in overrides and overrides["ways"] != cfg["ways"] and not spec.embedding:
      raise ValueError(f"--ways {overrides['ways']}: the {cfg['algo']} model of {run_dir} has a"
                       f" {cfg['ways']}-way head; only metric learners (protonet, matching,"
                       " r2d2) evaluate at another number of ways")
    # Evaluation builds no training episodes of its own: the train split takes the new counts.
    cfg.update(overrides, train_ways=None, train_queries=None)
  keys = run_keys(cfg["seed"])
  run = _registry.build(cfg, keys.init)
  abstract = jax.eval_shape(run.learner.init, keys.meta, run.params)
  model = _model_dir(run_dir, which)
  if os.path.isdir(model):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    with ocp.StandardCheckpointer() as ckpt:
      return run, ckpt.restore(model, abstract)
  directory = os.path.join(run_dir, "checkpoints")
  if _checkpoint.latest_step(directory) is None:
    raise FileNotFoundError(f"{run_dir} holds neither model/{which} nor a checkpoint: the run"
                            " was interrupted before its first checkpoint")
  base = _registry.build(trained, keys.init, splits=run.splits)
  step = make_meta_step(base.train_learner, base.outer_opt)
  like = step.init(keys.meta, base.params)
  state, best = _checkpoint.restore_checkpoint(
      directory, like, keys.train, described(trained),
      extra={"meta_params": like.meta_params, "score": _scalar(0.0), "step": _scalar(0),
             "train_s": _scalar(0.0)})
  return run, (best["meta_params"] if which == "best" and cfg["val_tasks"] >= 2
               else state.meta_params)


def evaluate_run(run_dir: str, *, which: str = "best", tasks: Optional[int] = None,
                 steps: Optional[list[int]] = None, split: str = "test",
                 seed: Optional[int] = None, overrides: Optional[dict[str, Any]] = None,
                 log: Callable[..., None] = _print) -> dict:
  """``jmeta eval``: meta-tests a run's best or final meta-parameters; writes ``eval.json``.

  With the run's own settings (same seed, tasks and steps) it reproduces the
  meta-test of ``jmeta train``.

  Args:
    run_dir: the run's ``OUT`` folder.
    which: ``"best"`` or ``"final"``.
    tasks: meta-test tasks (default: the run's ``eval_tasks``).
    steps: adaptation steps (default: the run's ``eval_steps``).
    split: ``"test"`` or ``"valid"``.
    seed: seed of the meta-test tasks (default: the run's).
    overrides: ``ways``, ``shots``, ``queries`` (few-shot runs).
    log: prints one line.

  Returns:
    The content of ``eval.json``.
  """
  if split not in ("test", "valid"):
    raise ValueError(f"--split must be test or valid; got {split!r}")
  run, meta_params = load_run(run_dir, which=which, overrides=overrides)
  cfg = run.cfg
  tasks = cfg["eval_tasks"] if tasks is None else tasks
  steps = list(cfg["eval_steps"] if steps is None else steps)
  keys = run_keys(cfg["seed"] if seed is None else seed)
  source = getattr(run.splits, split)
  table = meta_test(run, meta_params, source, keys.test if split == "test" else keys.valid,
                    num_tasks=tasks, steps=tuple(steps))
  log(f"meta-test of {run_dir} ({which} meta-parameters) on {tasks} tasks of"
      f" {describe(source.describe())}:")
  for line in table_lines(cfg, table):
    log(line)
  first = table[steps[0]]
  result = {"run": os.path.abspath(run_dir), "which": which, "split": split,
            "seed": cfg["seed"] if seed is None else seed, "tasks": tasks, "steps": steps,
            "overrides": overrides or {}, "source": source.describe(),
            "meta_test": _table_json(table),
            "accuracy": first["query_accuracy"][0] if "query_accuracy" in first else None,
            "ci95": first["query_accuracy"][1] if "query_accuracy" in first else None}
  with open(os.path.join(run_dir, "eval.json"), "w") as f:
    json.dump(result, f, indent=2, default=str)
  return result
