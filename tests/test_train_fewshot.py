"""``jmeta train --dataset omniglot`` end to end on small fake Omniglot archives."""

import json

import numpy as np
import pytest

import jmeta.data as jd
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


def test_train_protonet_on_fake_omniglot_end_to_end(archives, tmp_path, capsys):
  out = tmp_path / "run"
  code = cli.main(_argv(archives, out, "--algo", "protonet", "--iterations", "4", "--log-every",
                        "2", "--val-every", "2", "--val-episodes", "4", "--eval-episodes", "6"))
  assert code == 0
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4]
  assert all(0.0 <= l["val_accuracy"] <= 1.0 and np.isfinite(l["query_loss"]) for l in lines)
  results = json.loads((out / "results.json").read_text())
  assert results["config"]["algo"] == "protonet" and results["config"]["ways"] == 3
  assert results["config"]["classes"] == {"train": 24, "valid": 12, "test": 24}
  assert results["meta_steps"] == 4
  assert results["best_val"]["step"] in (2, 4)
  acc = results["meta_test"]["0"]["query_accuracy"]
  assert 0.0 <= acc["mean"] <= 1.0 and acc["ci95"] >= 0 and results["accuracy"] == acc["mean"]
  assert results["timing"]["train_s"] > 0 and results["timing"]["first_block_s"] > 0
  printed = capsys.readouterr().out
  assert "meta-test on 6 episodes of the 24 test classes" in printed
  assert f"{100 * acc['mean']:.2f}" in printed


@pytest.mark.parametrize("extra,message", [
    (["--ways", "30"], "ways=30 exceeds the 24 classes"),
    (["--shots", "4", "--queries", "3"], "shots + queries = 4 + 3 = 7 exceeds the 6 examples"),
    (["--algo", "protonet", "--dataset", "omniglot", "--data-dir", "/nonexistent/omniglot"],
     "--data-dir /nonexistent/omniglot does not exist"),
])
def test_bad_data_configuration_exits_2_with_a_message(archives, tmp_path, capsys, extra, message):
  with pytest.raises(SystemExit) as e:
    cli.main(_argv(archives, tmp_path / "x", "--iterations", "0", *extra))
  assert e.value.code == 2
  assert message in capsys.readouterr().err


def test_fewshot_algorithms_need_a_dataset(capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    cli.main(["train", "--algo", "protonet", "--iterations", "0", "--out", str(tmp_path / "y")])
  assert e.value.code == 2
  assert "--algo protonet needs --dataset omniglot" in capsys.readouterr().err
