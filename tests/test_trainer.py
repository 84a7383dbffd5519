"""The one trainer (``jmeta train``) and ``jmeta eval``, on every kind of task source.

Few-shot runs use small generated Omniglot archives; the digits run uses the
data scikit-learn ships. Nothing is downloaded.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import jmeta.data as jd
from jmeta import training
from jmeta import cli

# 3 background alphabets of 3 characters (1 alphabet validates with --split lake --num-valid 1),
# 2 evaluation alphabets of 3; 6 drawers. With rotations: 24 train, 12 valid, 24 test classes.
CHARS = {"images_background": [3, 3, 3], "images_evaluation": [3, 3]}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
  root = tmp_path_factory.mktemp("fake_omniglot")
  jd.write_fake_omniglot(root / "manual", CHARS, drawers=6)
  return root


def _argv(root, out, *extra):
  return ["train", "--dataset", "omniglot", "--data-dir", str(root / "manual"), "--tfds-dir",
          str(root / "tfds"), "--archive-check", "layout", "--split", "lake", "--num-valid", "1",
          "--ways", "3", "--shots", "1", "--queries", "2", "--hidden", "4", "--meta-batch", "2",
          "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def protonet_run(archives, tmp_path_factory):
  """A finished ProtoNets run, validated every block, with checkpoints."""
  out = tmp_path_factory.mktemp("runs") / "protonet"
  code = cli.main(_argv(archives, out, "--algo", "protonet", "--train-ways", "3", "--iterations", "6", "--log-every",
                        "2", "--val-every", "2", "--val-tasks", "8", "--eval-tasks", "6",
                        "--checkpoint-every", "2"))
  assert code == 0
  return out


def _json(path):
  with open(path) as f:
    return json.load(f)


def test_fewshot_run_writes_config_metrics_results_and_models(protonet_run, archives, capsys):
  out = protonet_run
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]
  assert all(0.0 <= l["val_query_accuracy"] <= 1.0 and np.isfinite(l["query_loss"]) for l in lines)
  results = _json(out / "results.json")
  cfg = results["config"]
  assert cfg["algo"] == "protonet" and cfg["ways"] == 3 and cfg["inner_steps"] == 0
  assert cfg["eval_tasks"] == 6 and cfg["val_tasks"] == 8  # the options, not fixed 600 + 200
  assert results["sources"]["train"]["classes"] == 24 and results["sources"]["valid"]["classes"] == 12
  assert results["sources"]["test"] == {"name": "omniglot/test", "ways": 3, "shots": 1,
                                        "queries": 2, "classes": 24, "examples_per_class": 6,
                                        "example_shape": [28, 28, 1]}
  assert results["meta_steps"] == 6
  acc = results["meta_test"]["0"]["query_accuracy"]
  assert 0.0 <= acc["mean"] <= 1.0 and acc["ci95"] >= 0 and results["accuracy"] == acc["mean"]
  assert _json(out / "config.json") == json.loads(json.dumps(cfg))
  assert (out / "model" / "best").is_dir() and (out / "model" / "final").is_dir()
  # The prepared dataset went to --tfds-dir; the archives' folder holds only the archives.
  assert sorted(os.listdir(archives / "manual")) == ["images_background.zip", "images_evaluation.zip"]


def test_best_meta_parameters_are_the_validation_best(protonet_run):
  results = _json(protonet_run / "results.json")
  lines = [json.loads(l) for l in (protonet_run / "metrics.jsonl").read_text().splitlines()]
  scores = [l["val_query_accuracy"] for l in lines]
  best = results["best_val"]
  assert best["score"] == max(scores) and best["step"] == lines[scores.index(max(scores))]["step"]
  # model/best, meta-tested on the same validation tasks, scores exactly the kept best.
  again = training.evaluate_run(str(protonet_run), split="valid", tasks=8, steps=[0],
                                log=lambda *a: None)
  assert again["accuracy"] == best["score"]


def test_eval_reproduces_the_run_and_writes_eval_json(protonet_run, capsys):
  assert cli.main(["eval", str(protonet_run)]) == 0
  printed = capsys.readouterr().out
  evaluated = _json(protonet_run / "eval.json")
  assert evaluated["meta_test"] == _json(protonet_run / "results.json")["meta_test"]
  assert f"{100 * evaluated['accuracy']:6.2f}" in printed
  # Another seed draws other episodes; a metric learner evaluates at other ways and shots.
  assert cli.main(["eval", str(protonet_run), "--seed", "7", "--ways", "2", "--shots", "2",
                   "--episodes", "4"]) == 0
  other = _json(protonet_run / "eval.json")
  assert other["source"]["ways"] == 2 and other["source"]["shots"] == 2 and other["tasks"] == 4
  assert other["meta_test"] != evaluated["meta_test"]


def test_eval_of_an_interrupted_run_reads_its_newest_checkpoint(protonet_run, tmp_path):
  copy = tmp_path / "interrupted"
  shutil.copytree(protonet_run, copy)
  shutil.rmtree(copy / "model")
  os.remove(copy / "results.json")
  evaluated = training.evaluate_run(str(copy), log=lambda *a: None)
  assert evaluated["meta_test"] == _json(protonet_run / "results.json")["meta_test"]
  final = training.evaluate_run(str(protonet_run), which="final", log=lambda *a: None)
  assert training.evaluate_run(str(copy), which="final", log=lambda *a: None)["meta_test"] == \
      final["meta_test"]


def test_maml_run_eval_refuses_other_ways_and_time_budget_stops(archives, tmp_path, capsys):
  out = tmp_path / "maml"
  code = cli.main(_argv(archives, out, "--algo", "maml", "--iterations", "1000", "--log-every",
                        "2", "--val-tasks", "0", "--eval-tasks", "2", "--time-budget", "1e-6"))
  assert code == 0
  results = _json(out / "results.json")
  # The first (compiling) block is not counted; the budget ends the run after the second.
  assert results["meta_steps"] == 4 and results["best_val"] is None
  assert results["config"]["inner_steps"] == 1 and results["config"]["inner_lr"] == 0.4
  capsys.readouterr()
  with pytest.raises(SystemExit) as e:
    cli.main(["eval", str(out), "--ways", "2"])
  assert e.value.code == 2
  assert "3-way head" in capsys.readouterr().err


def test_digits_pairs_train_from_the_command_line(tmp_path):
  out = tmp_path / "digits"
  code = cli.main(["train", "--dataset", "digits", "--algo", "maml", "--iterations", "20",
                   "--log-every", "10", "--val-every", "10", "--val-tasks", "20",
                   "--eval-tasks", "50", "--meta-batch", "4", "--out", str(out), "--no-progress"])
  assert code == 0
  results = _json(out / "results.json")
  assert results["sources"]["train"] == {"name": "digits/train", "ways": 2, "shots": 5,
                                         "queries": 10, "classes": 10, "examples_per_class": 104,
                                         "example_shape": [8, 8, 1]}
  assert results["config"]["inner_lr"] == 0.1 and results["config"]["eval_steps"] == [1]
  assert results["meta_test"]["1"]["query_accuracy"]["mean"] > 0.5  # above chance already


def test_digits_splits_hold_every_digit_on_disjoint_images():
  splits = jd.load_digits()
  assert [s.shape for s in splits] == [(10, 104, 8, 8, 1), (10, 35, 8, 8, 1), (10, 35, 8, 8, 1)]
  flat = np.concatenate([np.asarray(s).reshape(-1, 64) for s in splits])
  assert len(np.unique(flat, axis=0)) >= 0.97 * len(flat)  # a few digits images are duplicates
  assert float(flat.min()) == 0.0 and float(flat.max()) == 1.0


def test_every_learner_builds_on_every_source_kind_it_supports():
  import jax
  for algo, spec in training.LEARNERS.items():
    for source in ("sinusoid", "logistic", "digits"):
      kind = training.SOURCES[source].kind
      options = {"algo": algo, ("task" if training.SOURCES[source].synthetic else "dataset"): source}
      if kind not in spec.kinds:
        with pytest.raises(ValueError, match=f"--algo {algo} needs"):
          training.resolve(options)
        continue
      cfg = training.resolve(options)
      run = training.build(cfg, jax.random.key(0))
      assert run.learner.init is not None
      assert cfg["inner_steps"] == (0 if spec.embedding else 5 if algo == "reptile" else 1)


@pytest.mark.parametrize("extra,message", [
    (["--ways", "30"], "ways=30 exceeds the 24 classes"),
    (["--shots", "4", "--queries", "3"], "shots + queries = 4 + 3 = 7 exceeds the 6 examples"),
    (["--data-dir", "/nonexistent/omniglot"], "--data-dir /nonexistent/omniglot does not exist"),
    (["--task", "logistic"], "--task does not apply to --algo maml on --dataset omniglot"),
    (["--eval-queries", "5"], "--eval-queries does not apply"),
    (["--algo", "protonet", "--inner-lr", "0.1"], "--inner-lr does not apply to --algo protonet"),
])
def test_bad_data_configuration_exits_2_with_a_message(archives, tmp_path, capsys, extra, message):
  argv = _argv(archives, tmp_path / "x", "--iterations", "0")
  if extra[0] == "--data-dir":
    argv[argv.index("--data-dir") + 1] = extra[1]
    extra = []
  with pytest.raises(SystemExit) as e:
    cli.main(argv + extra)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_out_and_data_dir_that_are_files_are_errors(archives, tmp_path, capsys):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  for argv, message in [
      (["train", "--out", str(a_file)], f"--out {a_file} is a file"),
      (_argv(archives, tmp_path / "y") + ["--data-dir", str(a_file)], "is a file; expected the folder"),
      (["train", "--algo", "protonet", "--out", str(tmp_path / "z")],
       "--algo protonet needs a classification task source"),
      (["eval", str(tmp_path)], "holds no jmeta run (no config.json)"),
  ]:
    with pytest.raises(SystemExit) as e:
      cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_mnist_pairs_through_the_same_source(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setenv("JMETA_CACHE", str(tmp_path / "cache"))
  out = tmp_path / "mnist"
  with tfds.testing.mock_data(num_examples=300):
    code = cli.main(["train", "--dataset", "mnist", "--algo", "protonet", "--shots", "1",
                     "--queries", "2", "--iterations", "4", "--log-every", "2", "--val-tasks", "4",
                     "--eval-tasks", "4", "--hidden", "8", "--out", str(out), "--no-progress"])
  assert code == 0
  sources = _json(out / "results.json")["sources"]
  assert sources["train"]["name"] == "mnist/train" and sources["train"]["example_shape"] == [28, 28, 1]
  assert sources["test"]["examples_per_class"] > 0 and sources["train"]["ways"] == 2


def test_metric_learners_train_on_more_ways_than_they_test(tmp_path):
  cfg = training.resolve({"dataset": "omniglot", "algo": "protonet"})
  assert (cfg["train_ways"], cfg["train_queries"], cfg["lr_halve_every"], cfg["meta_batch"]) == \
      (60, 5, 2000, 1)  # Snell et al.'s Omniglot recipe
  assert cfg["meta_lr"] == 1e-3
  r2d2 = training.resolve({"dataset": "omniglot", "algo": "r2d2"})
  assert (r2d2["train_ways"], r2d2["lr_halve_every"], r2d2["meta_lr"]) == (60, 2000, 5e-3)  # Bertinetto et al.'s code
  assert training.resolve({"dataset": "omniglot", "algo": "r2d2", "meta_lr": 1e-3})["meta_lr"] == 1e-3
  if jax.default_backend() == "cpu":  # the MAML family validates often enough for a curve on a CPU budget
    assert training.resolve({"dataset": "omniglot", "algo": "maml"})["val_every"] == 100
    assert cfg["val_every"] == 500
  out = tmp_path / "wide"
  assert cli.main(["train", "--dataset", "digits", "--algo", "protonet", "--train-ways", "4",
                   "--train-queries", "3", "--lr-halve-every", "5", "--iterations", "10",
                   "--log-every", "5", "--val-tasks", "4", "--eval-tasks", "10", "--out", str(out),
                   "--no-progress"]) == 0
  results = _json(out / "results.json")
  assert (results["sources"]["train"]["ways"], results["sources"]["train"]["queries"]) == (4, 3)
  assert (results["sources"]["test"]["ways"], results["sources"]["test"]["queries"]) == (2, 10)
  assert results["config"]["lr_halve_every"] == 5
