"""``jmeta train --task point-nav --algo maml-rl`` and ``--task bandit --algo rl2`` through the one trainer."""

import json

import numpy as np
import pytest

from jmeta import cli

BANDIT = ["train", "--task", "bandit", "--algo", "rl2", "--arms", "3", "--pulls", "4",
          "--meta-batch", "4", "--hidden", "8", "--log-every", "2", "--val-every", "2",
          "--val-tasks", "4", "--eval-tasks", "12", "--no-progress", "--seed", "1"]


def _lines(out):
  return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def test_rl2_bandit_trains_checkpoints_resumes_and_evaluates(tmp_path, capsys):
  whole, part = tmp_path / "whole", tmp_path / "part"
  assert cli.main(BANDIT + ["--iterations", "6", "--out", str(whole)]) == 0
  lines = _lines(whole)
  assert [l["step"] for l in lines] == [2, 4, 6]
  assert all(0 <= l["return"] <= 4 and l["nonfinite"] == 0 and "entropy" in l for l in lines)
  assert all(0 <= l["val_return"] <= 4 for l in lines)
  results = json.loads((whole / "results.json").read_text())
  cfg = results["config"]
  assert (cfg["algo"], cfg["kind"], cfg["arms"], cfg["pulls"], cfg["entropy_coef"]) == (
      "rl2", "rl", 3, 4, 0.01)
  assert results["sources"]["test"]["name"] == "bandit-3x4"
  assert results["best_val"]["metric"] == "return"
  assert results["best_val"]["score"] == max(l["val_return"] for l in lines)
  table = results["meta_test"]
  assert set(table) == {"0"} and 0 <= table["0"]["return"]["mean"] <= 4
  assert f"{table['0']['return']['mean']:.4f}" in capsys.readouterr().out
  # Interrupted after 4 steps (a checkpoint every 2), then resumed: the same numbers.
  assert cli.main(BANDIT + ["--iterations", "4", "--checkpoint-every", "2", "--out", str(part)]) == 0
  (part / "results.json").unlink()
  assert cli.main(BANDIT + ["--iterations", "6", "--checkpoint-every", "2", "--resume",
                            "--out", str(part)]) == 0
  resumed = json.loads((part / "results.json").read_text())
  assert resumed["meta_steps"] == 6
  np.testing.assert_allclose([l["return"] for l in _lines(part)],
                             [l["return"] for l in lines], rtol=1e-6)
  assert resumed["meta_test"] == table
  # jmeta eval reproduces the meta-test.
  assert cli.main(["eval", str(whole)]) == 0
  assert json.loads((whole / "eval.json").read_text())["meta_test"] == table


def test_maml_rl_point_nav_trains(tmp_path):
  out = tmp_path / "nav"
  assert cli.main(["train", "--task", "point-nav", "--algo", "maml-rl", "--iterations", "2",
                   "--log-every", "1", "--meta-batch", "2", "--trajectories", "2", "--hidden", "8",
                   "--val-tasks", "0", "--eval-tasks", "4", "--eval-steps", "0,1", "--out", str(out),
                   "--no-progress"]) == 0
  lines = _lines(out)
  assert [l["step"] for l in lines] == [1, 2]
  assert all(-300 < l["return"] < 0 and -300 < l["return_before"] < 0 for l in lines)
  results = json.loads((out / "results.json").read_text())
  assert results["config"]["inner_lr"] == 0.1 and results["config"]["trajectories"] == 2
  table = results["meta_test"]
  assert set(table) == {"0", "1"}
  assert table["0"]["return"]["mean"] == pytest.approx(-table["0"]["query_loss"]["mean"])
  assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--task", "bandit", "--algo", "maml-rl"], "--algo maml-rl runs on --task point-nav"),
    (["--task", "point-nav", "--algo", "rl2"], "--algo rl2 runs on --task bandit"),
    (["--task", "point-nav", "--algo", "maml"], "--task point-nav is rl"),
    (["--task", "sinusoid", "--algo", "rl2"], "--algo rl2 needs a rl task source"),
    (["--task", "point-nav", "--algo", "maml-rl", "--arms", "3"], "--arms does not apply"),
    (["--task", "bandit", "--algo", "rl2", "--trajectories", "3"], "--trajectories does not apply"),
])
def test_bad_meta_rl_options_exit_2(argv, message, tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["train", *argv, "--iterations", "0", "--out", str(tmp_path / "x")])
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_maml_rl_with_promp_outer_objective(tmp_path):
  out = tmp_path / "promp"
  assert cli.main(["train", "--task", "point-nav", "--algo", "maml-rl", "--outer-objective", "promp",
                   "--iterations", "2", "--log-every", "2", "--meta-batch", "2", "--trajectories",
                   "2", "--hidden", "4", "--val-tasks", "0", "--eval-tasks", "2", "--eval-steps", "1",
                   "--out", str(out), "--no-progress"]) == 0
  line, = _lines(out)
  assert line["step"] == 2 and 0 <= line["clip_fraction"] <= 1 and -300 < line["return"] < 0
  assert json.loads((out / "results.json").read_text())["config"]["outer_objective"] == "promp"
