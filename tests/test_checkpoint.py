"""``jmeta train --checkpoint-every/--resume``: a run killed with SIGKILL resumes bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import jmeta.data as jd
from jmeta import cli

ARGS = ["train", "--task", "linear", "--log-every", "4", "--checkpoint-every", "4", "--meta-batch", "2",
        "--eval-tasks", "2", "--eval-steps", "0", "--val-every", "8", "--val-tasks", "4",
        "--no-progress", "--seed", "5"]
CHARS = {"images_background": [3, 3, 3], "images_evaluation": [3, 3]}


@pytest.fixture(scope="module")
def omniglot(tmp_path_factory):
  """Fake Omniglot archives, prepared once (so that concurrent runs only read the cache)."""
  root = tmp_path_factory.mktemp("ckpt_omniglot")
  jd.write_fake_omniglot(root / "manual", CHARS, drawers=6)
  (root / "tfds").mkdir()
  jd.load_omniglot(root / "tfds", manual_dir=root / "manual", split="lake", num_valid=1,
                   config=jd.OmniglotConfig(name="layout_only", expected_counts={
                       "images_background": None, "images_evaluation": None}))
  return ["train", "--dataset", "omniglot", "--data-dir", str(root / "manual"), "--tfds-dir",
          str(root / "tfds"), "--archive-check", "layout", "--split", "lake", "--num-valid", "1",
          "--ways", "3", "--shots", "1", "--queries", "2", "--hidden", "4", "--meta-batch", "2",
          "--algo", "protonet", "--train-ways", "3", "--log-every", "2", "--checkpoint-every", "2", "--val-every", "4",
          "--val-tasks", "4", "--eval-tasks", "4", "--no-progress", "--seed", "5"]


def _jmeta(*argv):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "jmeta.cli", *argv], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved(out, step):
  return ocp.StandardCheckpointer().restore(os.path.join(out, "checkpoints", str(step), "items"))


def _steps(directory):
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


def _log(out):
  return [{k: v for k, v in json.loads(l).items() if k != "time_s"}
          for l in open(os.path.join(out, "metrics.jsonl"))]


@pytest.mark.parametrize("source,iterations", [("linear", 40), ("omniglot", 12)])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, omniglot, source, iterations):
  args = (ARGS if source == "linear" else omniglot) + ["--iterations", str(iterations)]
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  ref = _jmeta(*args, "--out", full)
  proc = _jmeta(*args, "--out", killed)
  deadline = time.time() + 900
  while not _steps(os.path.join(killed, "checkpoints")) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, "results.json")), "the run ended before the kill"
  saved_at = max(_steps(os.path.join(killed, "checkpoints")))
  assert 0 < saved_at < iterations

  resumed = _jmeta(*args, "--out", killed, "--resume")
  out, err = resumed.communicate(timeout=900)
  assert resumed.returncode == 0, err[-3000:]
  assert "resumed from" in out
  _, err = ref.communicate(timeout=900)
  assert ref.returncode == 0, err[-3000:]

  # State, PRNG key, best meta-parameters so far: bit for bit.
  a, b = _saved(full, iterations), _saved(killed, iterations)
  assert int(a["state"]["step"]) == iterations
  a.pop("train_s"), b.pop("train_s")
  jax.tree.map(np.testing.assert_array_equal, a, b)
  log, ref_log = _log(killed), _log(full)
  assert [l["step"] for l in log] == [l["step"] for l in ref_log]
  assert log == ref_log  # metrics and validation scores, every block
  ra = json.load(open(os.path.join(full, "results.json")))
  rb = json.load(open(os.path.join(killed, "results.json")))
  assert ra["meta_test"] == rb["meta_test"] and ra["best_val"] == rb["best_val"]


def _fails(argv, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 2
  return capsys.readouterr().err


def test_missing_mismatched_or_corrupt_checkpoints_are_errors(tmp_path, capsys):
  out = str(tmp_path / "run")
  base = ARGS + ["--iterations", "4", "--out", out]
  assert "no checkpoint found" in _fails(base + ["--resume"], capsys)
  assert cli.main(base) == 0
  capsys.readouterr()
  assert "holds a finished run (results.json)" in _fails(base, capsys)
  os.remove(os.path.join(out, "results.json"))  # as if killed after its last checkpoint
  assert "already holds checkpoints: pass --resume" in _fails(base, capsys)
  err = _fails(base + ["--resume", "--meta-lr", "0.5"], capsys)
  assert "different configuration" in err and "meta_lr" in err
  assert "must be a multiple of --log-every" in _fails(base + ["--checkpoint-every", "6"], capsys)
  assert _steps(os.path.join(out, "checkpoints")) == [4]
  items = os.path.join(out, "checkpoints", "4", "items")
  for root, _, files in os.walk(items):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  assert "is corrupt" in _fails(base + ["--resume", "--iterations", "12"], capsys)
