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

from jmeta import cli

ARGS = ["train", "--task", "linear", "--log-every", "4", "--checkpoint-every", "4", "--meta-batch", "2",
        "--eval-tasks", "2", "--eval-steps", "0", "--no-progress", "--seed", "5"]


def _jmeta(*argv):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "jmeta.cli", *argv], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved(out, step):
  return ocp.StandardCheckpointer().restore(os.path.join(out, "checkpoints", str(step), "items"))


def _steps(directory):
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
  full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
  iterations = ["--iterations", "40"]
  ref = _jmeta(*ARGS, *iterations, "--out", full)
  proc = _jmeta(*ARGS, *iterations, "--out", killed)
  deadline = time.time() + 600
  while not _steps(os.path.join(killed, "checkpoints")) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, "results.json")), "the run ended before the kill"
  saved_at = max(_steps(os.path.join(killed, "checkpoints")))
  assert 0 < saved_at < 40

  resumed = _jmeta(*ARGS, *iterations, "--out", killed, "--resume")
  out, err = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, err[-3000:]
  assert "resumed from" in out
  _, err = ref.communicate(timeout=600)
  assert ref.returncode == 0, err[-3000:]

  a, b = _saved(full, 40), _saved(killed, 40)
  assert int(a["state"]["step"]) == 40
  jax.tree.map(np.testing.assert_array_equal, a, b)
  log = [json.loads(l) for l in open(os.path.join(killed, "metrics.jsonl"))]
  assert [l["step"] for l in log] == list(range(4, 41, 4))
  ref_log = [json.loads(l) for l in open(os.path.join(full, "metrics.jsonl"))]
  assert [l["query_loss"] for l in log] == [l["query_loss"] for l in ref_log]


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
