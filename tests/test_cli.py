"""The ``jmeta`` command line on the synthetic task families."""

import json

import numpy as np
import pytest

from jmeta import cli


def test_train_writes_metrics_results_and_plot(tmp_path, capsys):
  out = tmp_path / "run"
  code = cli.main(["train", "--iterations", "40", "--log-every", "20", "--meta-batch", "4",
                   "--eval-tasks", "20", "--eval-steps", "0,1,10", "--val-every", "20",
                   "--val-tasks", "10", "--out", str(out), "--no-progress", "--seed", "3"])
  assert code == 0
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [20, 40]
  assert all(np.isfinite(l["query_loss"]) and l["nonfinite"] == 0 for l in lines)
  assert all(l["val_query_loss"] > 0 for l in lines)
  results = json.loads((out / "results.json").read_text())
  cfg = results["config"]
  assert cfg["algo"] == "maml" and cfg["shots"] == 10 and cfg["inner_steps"] == 1
  assert cfg["inner_lr"] == 0.01 and cfg["meta_lr"] == 1e-3 and cfg["queries"] == 10
  assert results["sources"]["test"] == {"name": "sinusoid", "shots": 10, "queries": 100}
  assert results["best_val"]["metric"] == "query_loss"
  assert -results["best_val"]["score"] == min(l["val_query_loss"] for l in lines)
  table = results["meta_test"]
  assert set(table) == {"0", "1", "10"}
  assert table["10"]["support_loss"]["mean"] < table["0"]["support_loss"]["mean"]
  assert table["0"]["query_loss"]["ci95"] > 0
  assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  printed = capsys.readouterr().out
  assert "meta-test on 20 tasks of sinusoid (shots 10, queries 100)" in printed
  assert f"{table['1']['query_loss']['mean']:.4f}" in printed
  assert cli.main(["eval", str(out), "--steps", "0,1,10"]) == 0
  assert json.loads((out / "eval.json").read_text())["meta_test"] == table


def test_train_is_deterministic(tmp_path):
  args = ["train", "--iterations", "10", "--log-every", "10", "--meta-batch", "2", "--eval-tasks", "4",
          "--eval-steps", "1", "--no-progress", "--algo", "reptile", "--task", "linear"]
  cli.main(args + ["--out", str(tmp_path / "a")])
  cli.main(args + ["--out", str(tmp_path / "b")])
  a = json.loads((tmp_path / "a" / "results.json").read_text())["meta_test"]
  b = json.loads((tmp_path / "b" / "results.json").read_text())["meta_test"]
  assert a == b


@pytest.mark.parametrize("argv,message", [
    (["train", "--algo", "mamal"], "invalid choice: 'mamal'"),
    (["train", "--shots", "0"], "expected a positive integer, got 0"),
    (["train", "--inner-lr", "-1"], "expected a positive number"),
    (["train", "--inner-lr", "inf"], "expected a positive number (finite), got 'inf'"),
    (["train", "--meta-lr", "nan"], "expected a positive number (finite), got 'nan'"),
    (["train", "--time-budget", "inf"], "(finite)"),
    (["train", "--eval-steps", "1,x"], "comma-separated integers"),
    (["train", "--algo", "meta-sgd", "--inner-opt", "adam", "--iterations", "0"], "--inner-opt must be sgd"),
    (["train", "--ways", "5", "--iterations", "0"], "--ways does not apply to --algo maml on --task sinusoid"),
    (["train", "--algo", "reptile", "--first-order", "--iterations", "0"], "--first-order does not apply"),
    ([], "required"),
])
def test_bad_options_exit_2_with_a_message(argv, message, capsys, tmp_path):
  if argv and "--iterations" in argv:
    argv = argv + ["--out", str(tmp_path / "x")]
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_help_lists_the_registry():
  from jmeta import training
  text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
  for name in list(training.LEARNERS) + list(training.SOURCES):
    assert name in text


def test_a_run_that_ends_non_finite_exits_1_with_a_summary(tmp_path, capsys):
  out = tmp_path / "nan"
  code = cli.main(["train", "--inner-lr", "1e30", "--iterations", "4", "--log-every", "2",
                   "--meta-batch", "2", "--eval-tasks", "2", "--val-tasks", "0", "--out", str(out),
                   "--no-progress"])
  assert code == 1
  err_line = [l for l in capsys.readouterr().out.splitlines() if "error:" in l]
  assert err_line == ["jmeta train: error: the run ended on non-finite meta-steps: 4 of 4"
                      " meta-steps were skipped; the saved meta-parameters are those of the last"
                      " finite update"]
  assert json.loads((out / "results.json").read_text())["skipped_meta_steps"] == 4


def test_readme_documents_every_registered_learner_and_source():
  import pathlib
  from jmeta import training
  readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
  for spec in training.LEARNERS.values():
    assert f"`{spec.factory}(" in readme, spec.factory
    assert spec.name in readme
  for name in training.SOURCES:
    assert name in readme
