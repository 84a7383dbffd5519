"""The benchmark harness's machinery (no timing; torch parts skip without torch)."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import numpy as np
import pytest

from benchmarks import _configs, _harness, _report, _stats

HAS_TORCH = importlib.util.find_spec("torch") is not None


# -- statistics on known numbers ---------------------------------------------

def test_median_and_spread_known_numbers():
  assert _stats.median([3.0, 1.0, 2.0]) == 2.0
  assert _stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
  s = _stats.spread([1.0, 2.0, 3.0, 4.0, 5.0])
  assert (s["min"], s["max"], s["q1"], s["q3"], s["iqr"]) == (1.0, 5.0, 2.0, 4.0, 2.0)
  with pytest.raises(ValueError):
    _stats.median([])


def test_paired_ratio_summary_known_numbers():
  jmeta = [100.0, 120.0, 90.0, 110.0]
  peer = [10.0, 10.0, 10.0, 11.0]
  assert _stats.paired_ratios(jmeta, peer) == [10.0, 12.0, 9.0, 10.0]
  r = _stats.ratio_summary(jmeta, peer)
  assert r["median"] == 10.0 and r["min"] == 9.0 and r["max"] == 12.0 and r["n"] == 4
  with pytest.raises(ValueError):
    _stats.paired_ratios([1.0], [1.0, 2.0])


def test_target_verdict():
  v = _stats.target_verdict(45.0, 30.0)
  assert v["met"] is True and v["factor"] == 1.5
  assert _stats.target_verdict(2.0, 5.0)["met"] is False
  assert _stats.target_verdict(None, 5.0)["met"] is None


# -- the gradient gate ---------------------------------------------------------

def test_max_rel_diff():
  ref = {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}
  assert _stats.max_rel_diff(ref, ref) == 0.0
  off = {"w": np.array([1.0, -2.0 + 2e-3]), "b": np.array([0.5])}
  assert math.isclose(_stats.max_rel_diff(off, ref), 1e-3, rel_tol=1e-9)
  assert _stats.max_rel_diff({"w": ref["w"]}, ref) == math.inf  # missing leaf
  assert _stats.max_rel_diff({"w": np.array([np.nan, 0.0]), "b": ref["b"]}, ref) == math.inf
  assert _stats.max_rel_diff(ref, {"w": np.array([np.nan, 0.0]), "b": ref["b"]}) == math.inf
  # A leaf whose exact gradient is ~0 is judged against the gradient's overall size.
  ref0 = {"w": np.array([1.0, -2.0]), "bias": np.array([1e-17])}
  noisy = {"w": ref0["w"], "bias": np.array([1e-9])}
  assert _stats.max_rel_diff(noisy, ref0) < 1e-6


def test_gate_refuses_a_disagreeing_implementation():
  ok, why = _stats.gradient_gate(1e-12)
  assert ok and "agrees" in why
  ok, why = _stats.gradient_gate(3e-2)
  assert not ok and "disagrees" in why
  assert not _stats.gradient_gate(math.inf)[0]
  assert not _stats.gradient_gate(None)[0]


def test_speed_rows_withhold_ratio_when_gradient_disagrees():
  grad = {"ok": True, "dtype": "float64", "rtol": 1e-6,
          "peers": {"good": {"rel_diff": 1e-14}, "bad": {"rel_diff": 0.1},
                    "broken": {"error": "ImportError: nope"}}}
  speed = {"ok": True, "impls": {"jmeta": {"rates": [100.0, 100.0, 100.0]},
                                 "good": {"rates": [10.0, 20.0, 10.0]},
                                 "bad": {"rates": [1.0, 1.0, 1.0]},
                                 "broken": {"error": "ImportError: nope"}}}
  rows, ratios = _harness.speed_rows(speed, grad, {})
  by = {r[0]: r for r in rows}
  assert set(ratios) == {"good"}
  assert ratios["good"]["median"] == 10.0 and ratios["good"]["min"] == 5.0
  assert by["good"][2].startswith("10x")
  assert "withheld" in by["bad"][2] and "disagrees" in by["bad"][3]
  assert "not measured" in by["broken"][2]


# -- the report writer -----------------------------------------------------------

def _fake_run():
  return {
      "suite": "speed", "started": "2026-01-01 00:00:00", "finished": "2026-01-01 00:01:00",
      "command": "python -m benchmarks run speed --quick", "quick": True,
      "machine": {"cpu_model": "Fake CPU", "cores": 2, "mem_total_gib": 1.0,
                  "jax_backend": "cpu", "torch_threads": 2},
      "versions": {"jax": "0.0", "torch": None},
      "configs": [_configs.sinusoid_config(1).to_dict()],
      "sections": [{"title": "Speed: fake", "text": "hello",
                    "table": {"headers": ["impl", "steps/s"], "rows": [["jmeta", 12.5], ["learn2learn", None]]}}],
      "targets": [{"name": "fake target", "goal": ">= 30x", "measured": 45.0, "met": True, "by": "1.50"}],
      "data": {"anything": [1, 2, 3]},
  }


def test_report_writer(tmp_path):
  run = _fake_run()
  out = tmp_path / "results" / "speed-x"
  paths = _report.write_run(run, str(out))
  data = json.loads(open(paths["json"]).read())
  for field in _report.REQUIRED:
    assert field in data
  md = open(paths["markdown"]).read()
  assert "Fake CPU" in md and "| jmeta | 12.5 |" in md and "| learn2learn | - |" in md
  assert "MET" in md and "torch not installed" in md
  assert os.path.basename(paths["latest"]) == "latest_speed.md"
  assert os.path.dirname(paths["latest"]) == str(tmp_path / "results")


def test_report_writer_rejects_incomplete_runs(tmp_path):
  run = _fake_run()
  del run["machine"]
  with pytest.raises(ValueError, match="machine"):
    _report.write_run(run, str(tmp_path / "x"))


def test_plots_and_figure_links(tmp_path):
  pytest.importorskip("matplotlib")
  fig = _report.bar_plot(str(tmp_path / "b.png"), ["jmeta", "peer"], [100.0, None], "t", "y")
  assert fig == "b.png" and (tmp_path / "b.png").stat().st_size > 0
  assert _report.bar_plot(str(tmp_path / "c.png"), ["a"], [None], "t", "y") is None
  run = _fake_run()
  run["sections"][0]["figure"] = fig
  paths = _report.write_run(run, str(tmp_path / "r" / "speed-1"))
  assert "(speed-1/b.png)" in open(paths["latest"]).read()
  assert "(b.png)" in open(paths["markdown"]).read()


# -- configs and the shared data -----------------------------------------------------

def test_same_seed_same_data_and_weights():
  cfg = _configs.omniglot_config(tasks=2)
  a, b = _configs.make_batches(cfg, 1)[0], _configs.make_batches(cfg, 1)[0]
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert a[0].shape == (2, 5, 1, 28, 28) and a[2].shape == (2, 75, 1, 28, 28)
  w = _configs.init_weights(cfg)
  assert w["head.weight"].shape == (5, 64)
  assert set(w) == set(_configs.param_shapes(cfg))


def test_jax_side_weight_layout_roundtrip():
  pytest.importorskip("jax")
  from benchmarks._jax_side import _from_flax, _to_flax
  for cfg in (_configs.sinusoid_config(1), _configs.omniglot_config(tasks=1)):
    w = _configs.init_weights(cfg)
    back = _from_flax(cfg, _to_flax(cfg, w, "float32"))
    assert set(back) == set(w)
    for k in w:
      np.testing.assert_allclose(back[k], w[k], rtol=1e-6, atol=1e-7)


def test_worker_failure_is_a_row_not_an_exception():
  res = _harness.run_job({"kind": "no-such-job"}, timeout=120)
  assert res["ok"] is False and "no-such-job" in res["error"]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (bash benchmarks/install_peers.sh)")
def test_torch_func_peer_passes_the_gate_float64():
  jax = pytest.importorskip("jax")
  from benchmarks._jax_side import JmetaImpl
  from benchmarks.peers._maml import make_peer
  cfg = _configs.sinusoid_config(1, tasks=2)
  w, b = _configs.init_weights(cfg), _configs.make_batches(cfg, 1, dtype="float64")
  with jax.enable_x64(True):
    ref = JmetaImpl(cfg, w, b, "float64").meta_grad()
  g = make_peer("torch.func", cfg, w, b, "float64").meta_grad()
  rel = _stats.max_rel_diff(g, ref)
  assert _stats.gradient_gate(rel)[0], rel
  # A perturbed gradient (a different computation) is refused.
  g["l1.weight"] = g["l1.weight"] * 1.01
  assert not _stats.gradient_gate(_stats.max_rel_diff(g, ref))[0]


def test_cost_flops_count_every_task_of_a_scanned_meta_step():
  # Image tasks are scanned on the CPU (task_map="auto"), and XLA's cost analysis
  # counts a loop body once: the harness must still count every task.
  from benchmarks._jax_side import JmetaImpl, flops_note
  flops = []
  for n in (2, 4, 6):
    cfg = _configs.sinusoid_config(inner_steps=1, tasks=n)
    impl = JmetaImpl(cfg, _configs.init_weights(cfg), _configs.make_batches(cfg, 1), task_map="scan")
    flops.append(impl.cost_flops())
  assert flops[1] > flops[0] > 0
  np.testing.assert_allclose(flops[2] - flops[1], flops[1] - flops[0], rtol=1e-6)  # linear in tasks
  assert "exact" in flops_note(cfg)
  assert "lower bound" in flops_note(_configs.sinusoid_config(inner_steps=5))


# -- the speed suite's config selection (the GPU run: Omniglot meta-batch 32 first) ----------

def test_speed_configs_selection_and_order():
  from benchmarks._suites import speed_configs
  assert [c.name for c in speed_configs(False)] == ["sinusoid-1step", "sinusoid-5step",
                                                    "omniglot-5w1s-mb16"]
  assert speed_configs(True)[-1].tasks == 4
  picked = speed_configs(True, 32, ("omniglot", "sinusoid-1step"))
  assert [(c.name, c.tasks) for c in picked] == [("omniglot-5w1s-mb32", 32), ("sinusoid-1step", 25)]
  assert [c.name for c in speed_configs(False, None, ("sinusoid",))] == ["sinusoid-1step",
                                                                        "sinusoid-5step"]
  with pytest.raises(ValueError, match="'mnist' matches none"):
    speed_configs(False, None, ("mnist",))


def test_subprocesses_keep_the_callers_python_path(monkeypatch):
  monkeypatch.setenv("PYTHONPATH", "/carried/site")
  assert _harness.python_path() == _harness.REPO + os.pathsep + "/carried/site"
  monkeypatch.delenv("PYTHONPATH")
  assert _harness.python_path() == _harness.REPO


def test_peers_run_where_bench_torch_device_says(monkeypatch):
  from benchmarks.peers._compat import torch_device
  monkeypatch.delenv("BENCH_TORCH_DEVICE", raising=False)
  assert torch_device() == "cpu"
  monkeypatch.setenv("BENCH_TORCH_DEVICE", "cuda")
  assert torch_device() == "cuda"
  monkeypatch.setenv("BENCH_TORCH_DEVICE", "tpu")
  with pytest.raises(ValueError, match="BENCH_TORCH_DEVICE must be 'cpu' or 'cuda'; got 'tpu'"):
    torch_device()


# -- one harness: public API only, experiments listed, plain-JAX rows -----------------

_OUTSIDE = ("benchmarks", "notebooks", "tests")


def _private_jmeta_uses(path: str) -> list[str]:
  """``import``s of a private jmeta module and ``jmeta...._x`` attribute chains in a file."""
  import ast
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  private = lambda dotted: any(p.startswith("_") and not p.startswith("__") for p in dotted.split("."))
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [a.name for a in node.names if a.name.split(".")[0] == "jmeta" and private(a.name)]
    elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "jmeta":
      found += [f"{node.module} import {a.name}" for a in node.names
                if private(node.module) or private(a.name)]
    elif isinstance(node, ast.Attribute) and private(node.attr):
      chain, v = [node.attr], node.value
      while isinstance(v, ast.Attribute):
        chain.append(v.attr)
        v = v.value
      if isinstance(v, ast.Name) and v.id == "jmeta":
        found.append(".".join(["jmeta"] + chain[::-1]))
  return [f"{os.path.relpath(path, _harness.REPO)}:{f}" for f in found]


def _py_files(*folders: str) -> list[str]:
  import glob
  return sorted(p for d in folders
                for p in glob.glob(os.path.join(_harness.REPO, d, "**", "*.py"), recursive=True))


def test_nothing_outside_jmeta_imports_a_private_module(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("from jmeta.models._conv import ConvNet\nfrom jmeta import _registry\n"
                 "import jmeta._meta_step\nimport jmeta\nx = jmeta.models._ops.conv2d\n"
                 "from jmeta import models as _ops\nfrom jmeta.models import ConvNet\n")
  assert [f.split(":", 1)[1] for f in _private_jmeta_uses(str(bad))] == [
      "jmeta.models._conv import ConvNet", "jmeta import _registry", "jmeta._meta_step",
      "jmeta.models._ops"]
  files = _py_files(*_OUTSIDE)
  assert len(files) > 40
  assert [u for p in files for u in _private_jmeta_uses(p)] == []


def test_benchmarks_do_not_edit_sys_path():
  import re
  edits = [p for p in _py_files("benchmarks", "notebooks")
           if re.search(r"sys\.path\.(insert|append)", open(p).read())]
  assert edits == []


def test_list_shows_every_suite_and_experiment_with_its_figure(capsys):
  from benchmarks import _cli
  from benchmarks._suites import SUITE_FIGURES, SUITES
  assert set(SUITE_FIGURES) == set(SUITES) and "conv" in SUITES
  assert _cli.main(["list"]) == 0
  out = capsys.readouterr().out
  exps = _cli.experiments()
  assert {"benchmarks.experiments.sinusoid_table", "benchmarks.experiments.remat_memory",
          "benchmarks.omniglot_table", "benchmarks.gpu.run"} <= set(exps)
  assert not os.path.exists(os.path.join(_harness.REPO, "benchmarks", "conv_speed.py"))
  for name, fig in exps.items():
    assert fig, f"{name} declares no README_FIGURE"
    assert name in out and fig in out
  for name in SUITES:
    assert f"  {name} " in out


def test_readme_figure_is_read_without_importing(tmp_path):
  from benchmarks._cli import readme_figure
  mod = tmp_path / "m.py"
  mod.write_text("import no_such_module_anywhere\nREADME_FIGURE = (\"README 'X': \"\n"
                 "                 \"the Y table\")\n")
  assert readme_figure(str(mod)) == "README 'X': the Y table"
  mod.write_text("x = 1\n")
  assert readme_figure(str(mod)) is None


def test_conv_configs_and_algo_validation():
  from benchmarks._suites import conv_configs
  names = [c.name for c in conv_configs(False)]
  assert names == [f"conv-{a}-{w}w1s-mb8" for w in (5, 20)
                   for a in ("maml", "fomaml", "anil", "protonet")]
  assert [(c.algo, c.first_order) for c in conv_configs(True)] == [
      ("maml", False), ("maml", True), ("anil", False), ("protonet", False)]
  assert [c.name for c in conv_configs(True, 32, ("conv-maml-5w",))] == ["conv-maml-5w1s-mb32"]
  with pytest.raises(ValueError, match="algo must be one of"):
    _configs.sinusoid_config(1).replace(algo="reptile")
  with pytest.raises(ValueError, match="needs model 'conv'"):
    _configs.sinusoid_config(1).replace(algo="anil")


def test_cli_rejects_configs_of_a_suite_without_them(capsys):
  from benchmarks import _cli
  with pytest.raises(SystemExit):
    _cli.main(["run", "memory", "--configs", "sinusoid"])
  assert "only the" in capsys.readouterr().err


@pytest.mark.parametrize("steps", [1, 5])
def test_plain_jax_meta_gradient_matches_jmeta_float64(steps):
  jax = pytest.importorskip("jax")
  from benchmarks._jax_side import JmetaImpl
  from benchmarks._plain_jax import TASK_MAPS, PlainJaxImpl
  cfg = _configs.sinusoid_config(steps, tasks=3)
  w, b = _configs.init_weights(cfg), _configs.make_batches(cfg, 1, dtype="float64")
  with jax.enable_x64(True):
    ref = JmetaImpl(cfg, w, b, "float64").meta_grad()
    for task_map in TASK_MAPS.values():
      g = PlainJaxImpl(cfg, w, b, "float64", task_map=task_map).meta_grad()
      rel = _stats.max_rel_diff(g, ref)
      assert _stats.gradient_gate(rel)[0], (task_map, rel)
    # First-order MAML is a different computation: the gate refuses it.
    fo = PlainJaxImpl(cfg.replace(first_order=True), w, b, "float64").meta_grad()
  assert not _stats.gradient_gate(_stats.max_rel_diff(fo, ref))[0]


def test_plain_jax_conv_layout_and_step():
  jax = pytest.importorskip("jax")
  from benchmarks._plain_jax import PlainJaxImpl, conv_features, from_jax, to_jax
  cfg = _configs.conv_config("protonet", ways=2, tasks=2, queries=1).replace(image=16)
  w = _configs.init_weights(cfg)
  p = to_jax(cfg, w, "float32")
  assert "head.weight" not in p and p["conv0.weight"].shape == (3, 3, 1, 64)
  back = from_jax(p)
  for k in back:
    np.testing.assert_allclose(back[k], w[k], rtol=1e-6, atol=1e-7)
  x = jax.numpy.zeros((3, 16, 16, 1), jax.numpy.float32)
  assert conv_features(p, x).shape == (3, 64)  # four 2x2 pools: 16 -> 1
  impl = PlainJaxImpl(cfg, w, _configs.make_batches(cfg, 1), task_map="scan")
  before = np.asarray(impl.state[0]["conv0.weight"])
  impl.step()
  impl.sync()
  assert np.isfinite(float(impl._loss))
  assert not np.allclose(np.asarray(impl.state[0]["conv0.weight"]), before)


def test_conv_suite_table_from_canned_jobs(tmp_path):
  # The suite's logic on canned worker results: the jax rows pass the same gate
  # as a peer, and a disagreeing one gets no ratio.
  from benchmarks import _suites

  class FakeCtx(_suites.Ctx):
    def job(self, job, *, timeout=900.0, env=None):
      if job["kind"] == "peak":
        return {"ok": True, "n": 8, "flops_per_s": 1e9}
      if job["kind"] == "grad":
        assert job["peers"] == ["jax", "jax-scan"] and "XLA_FLAGS" in env
        return {"ok": True, "dtype": "float64", "rtol": 1e-6,
                "peers": {"jax": {"rel_diff": 1e-13}, "jax-scan": {"rel_diff": 0.5}}}
      assert job["kind"] == "speed" and job["impls"] == ["jmeta", "jax", "jax-scan"]
      return {"ok": True, "impls": {"jmeta": {"rates": [2.0, 2.0, 3.0]},
                                    "jax": {"rates": [1.0, 2.0, 1.0]},
                                    "jax-scan": {"rates": [4.0, 4.0, 4.0]}}}

  ctx = FakeCtx(True, str(tmp_path), lambda m: None, configs=("conv-protonet",), speed_only=True)
  ctx._peers = {"learn2learn": "ModuleNotFoundError: torch"}
  run = _suites.conv(ctx)
  summary = run["sections"][0]["table"]["rows"]
  assert summary == [["conv-protonet-5w1s-mb2", 2.0, "2x [1-3]", "-", "-"]]
  rows = {r[0]: r for r in run["sections"][1]["table"]["rows"]}
  assert rows["jax"][2].startswith("2x") and "agrees" in rows["jax"][3]
  assert "withheld" in rows["jax-scan"][2]
  assert rows["learn2learn"][1].startswith("not run")
