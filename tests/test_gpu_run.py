"""The prepared GPU run (benchmarks/gpu/run.py): its CPU dry run end to end, and its parsing."""

import json
import os
import re
import subprocess
import sys

import pytest

from benchmarks.gpu import run as gpu_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pytest_summary_counts_and_failed_ids():
  log = ("FAILED tests/test_a.py::test_x - AssertionError\n"
         "ERROR tests/test_b.py::test_y\n"
         "=========== 1 failed, 40 passed, 2 skipped, 1 error in 61.25s (0:01:01) ===========\n")
  s = gpu_run.pytest_summary(log)
  assert (s["failed"], s["passed"], s["skipped"], s["error"], s["seconds"]) == (1, 40, 2, 1, 61.25)
  assert s["failed_ids"] == ["tests/test_a.py::test_x", "tests/test_b.py::test_y"]
  assert gpu_run.pytest_summary("no summary")["failed_ids"] == []


def test_targets_follow_the_measured_numbers():
  report = {"tests": {"passed": 30, "line": "30 passed in 9s"},
            "speed": {"configs": {"omniglot-5w1s-mb32": {"ratios": {
                "torch.func": {"median": 7.5}, "higher": {"median": 4.9}}}}},
            "train": {"maml": {"accuracy": 0.9812, "ci95": 0.004, "meta_steps": 9000}}}
  met = {t["name"]: t["met"] for t in gpu_run.targets_of(report)}
  assert met == {"GPU test subset passes": True,
                 "omniglot-5w1s-mb32: jmeta / torch.func meta-steps/s >= 5x": True,
                 "omniglot-5w1s-mb32: jmeta / higher meta-steps/s >= 5x": False,
                 "MAML 5-way 1-shot test accuracy >= 98.0%": True}
  report["tests"]["failed"] = 1
  report["train"]["maml"] = None
  t = {t["name"]: t for t in gpu_run.targets_of(report)}
  assert t["GPU test subset passes"]["met"] is False
  assert t["MAML 5-way 1-shot test accuracy >= 98.0%"]["met"] is None


def test_bad_arguments_are_rejected(tmp_path):
  with pytest.raises(SystemExit):
    gpu_run.main(["--out", str(tmp_path), "--only", "env,bogus"])


def test_dry_run_end_to_end(tmp_path):
  """Every step of the GPU run on this machine with tiny settings and fake Omniglot."""
  out, work = tmp_path / "out", tmp_path / "work"
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  p = subprocess.run([sys.executable, "-m", "benchmarks.gpu.run", "--dry-run", "--out", str(out),
                      "--work", str(work)], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=600)
  assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
  report = json.loads((out / "report.json").read_text())
  assert [s["step"] for s in report["steps"]] == list(gpu_run.STEPS)
  assert all(s["status"] == "ok" for s in report["steps"]), report["steps"]
  # environment
  assert report["env"]["jax_backend"] == "cpu" and report["env"]["jax_devices"]
  assert report["env"]["versions"]["jax"] and report["env"]["jmeta_file"].startswith(REPO)
  # tests: pytest ran and its summary was read
  assert report["tests"]["passed"] >= 1 and not report["tests"].get("failed")
  # speed: the harness's suite, jmeta measured on the dry-run config
  rates = report["speed"]["configs"]["sinusoid-1step"]["steps_per_s"]
  assert rates["jmeta"] > 0 and rates["jmeta-scan"] > 0
  # training: both runs through `jmeta train`, the papers' flags with the dry-run overrides last
  for algo in ("maml", "protonet"):
    r = report["train"][algo]
    assert r["meta_steps"] == 4 and 0.0 <= r["accuracy"] <= 1.0 and r["ci95"] >= 0
    assert r["config"]["algo"] == algo and r["config"]["ways"] == 3
    assert r["config"]["meta_batch"] == 2 and r["config"]["eval_tasks"] == 6
  assert report["train"]["maml"]["config"]["inner_lr"] == 0.4
  assert report["train"]["maml"]["config"]["meta_lr"] == 1e-3
  # what comes back from the device tool: at most 8 plain files with plain names, small
  files = sorted(os.listdir(out))
  assert files == sorted(["report.md", "report.json", "env.txt", "pytest.txt", "speed.md",
                          "speed.json", "train.txt"])
  assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
  assert sum(os.path.getsize(out / f) for f in files) < 4 * 2 ** 20
  md = (out / "report.md").read_text()
  assert "DRY RUN" in md and "## Omniglot training" in md and "meta-steps/s" in md
  assert "MAML 5-way 1-shot test accuracy" in md
