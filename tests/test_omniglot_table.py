"""benchmarks/omniglot_table.py: cells from the registry's defaults, resume, table, curves, README."""

import argparse
import json

import pytest

from benchmarks import omniglot_table as ot


@pytest.fixture
def where(tmp_path, monkeypatch):
  monkeypatch.setattr(ot, "RESULTS", tmp_path)
  monkeypatch.setattr(ot, "RUNS", tmp_path / "runs")
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{ot.MARKERS[0]}\nold table\n{ot.MARKERS[1]}\nafter\n")
  monkeypatch.setattr(ot, "README", readme)
  return tmp_path


def _args(**kw):
  base = dict(data_dir="/data", tfds_dir=None, budget=None, checkpoint_every=500, seed=0)
  return argparse.Namespace(**{**base, **kw})


def test_cells_parse_and_bad_cells_are_clear_errors():
  assert ot.parse_cells("protonet:5:1, maml:20:5") == [("protonet", 5, 1), ("maml", 20, 5)]
  for bad in ("protonet:5", "resnet:5:1", "protonet:10:1", "protonet:a:1"):
    with pytest.raises(SystemExit, match="--cells"):
      ot.parse_cells(bad)


def test_a_cell_runs_with_the_registry_defaults_and_resumes_from_its_checkpoints(where):
  out = ot.run_dir("protonet", 5, 1)
  argv = ot.train_argv("protonet", 5, 1, _args(), out)
  # nothing of the learner's recipe is overridden: the registry's defaults apply
  for opt in ("--meta-batch", "--queries", "--iterations", "--inner-lr", "--time-budget"):
    assert opt not in argv
  assert argv[argv.index("--algo") + 1] == "protonet" and "--resume" not in argv
  (out / "checkpoints" / "500").mkdir(parents=True)
  argv = ot.train_argv("protonet", 5, 1, _args(budget=60.0), out)
  assert "--resume" in argv and argv[argv.index("--time-budget") + 1] == "60.0"


def test_table_curves_and_readme_come_from_the_runs(where):
  out = ot.run_dir("protonet", 5, 1)
  out.mkdir(parents=True)
  cfg = {"meta_batch": 1, "train_ways": 60, "queries": 15, "train_queries": 5, "inner_steps": 0,
         "inner_lr": None, "first_order": False, "meta_lr": 1e-3, "lr_halve_every": 2000,
         "time_budget": 900.0, "val_every": 500, "val_tasks": 200, "eval_tasks": 600}
  (out / "results.json").write_text(json.dumps({
      "config": cfg, "accuracy": 0.9812, "ci95": 0.0031, "meta_steps": 4100,
      "timing": {"trained_s_total": 900.0}, "best_val": {"step": 3500, "score": 0.97},
      "versions": {"jax": "0.10.2"}}))
  (out / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
      {"step": 100, "query_loss": 1.0}, {"step": 500, "val_query_accuracy": 0.9},
      {"step": 1000, "val_query_accuracy": 0.95}]) + "\n")
  (out / "cell.json").write_text(json.dumps({"sessions": [{"load_mean": 3.25}]}))
  running = ot.run_dir("maml", 5, 1)
  running.mkdir(parents=True)
  (running / "metrics.jsonl").write_text(json.dumps({"step": 200, "val_query_accuracy": 0.5}) + "\n")

  block = ot.write_outputs(ot.parse_cells("protonet:5:1,maml:5:1"))
  line = next(l for l in block.splitlines() if l.startswith("| ProtoNets | 5-way 1-shot"))
  assert "| 98.8 | 98.1 +/- 0.3 | 3500 / 4100 | 15 min (3.2) | mb 1, 60-way train episodes," in line
  assert "meta-lr 0.001, lr/2 every 2000" in line
  assert "running or interrupted at step 200" in next(
      l for l in block.splitlines() if l.startswith("| MAML | 5-way 1-shot"))
  assert "| R2-D2 | 5-way 1-shot | 98.6* | not run |" in block
  rows = json.loads((where / "omniglot_table.json").read_text())["rows"]
  proto = next(r for r in rows if r["algo"] == "protonet" and r["ways"] == 5 and r["shots"] == 1)
  assert proto["curve"] == [[500, 90.0], [1000, 95.0]]
  assert (where / "omniglot_curves.png").stat().st_size > 1000
  readme = ot.README.read_text()
  assert "old table" not in readme and block in readme
  assert readme.startswith("intro\n") and readme.endswith("after\n")
