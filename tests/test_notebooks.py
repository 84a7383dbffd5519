"""The tutorial notebooks: committed without outputs, and run top to bottom with small settings.

Each notebook is executed in a fresh Jupyter kernel by nbclient with
``JMETA_SMALL=1`` (read by its first code cell); any cell error fails the
test. Set ``JMETA_SKIP_NOTEBOOKS=1`` to skip the execution (e.g. without a
Jupyter kernel).
"""

import os
import sys

import pytest

nbformat = pytest.importorskip("nbformat")

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS_DIR = os.path.join(os.path.dirname(HERE), "notebooks")
sys.path.insert(0, NOTEBOOKS_DIR)
import _make  # noqa: E402  (the generator of the notebooks)

NAMES = [_make.build(make)[0] for make in _make.NOTEBOOKS]
TIMEOUT_S = 600  # seconds per cell: a guard against hangs, not a speed test (CPU may be shared)


def _read(name):
  return nbformat.read(os.path.join(NOTEBOOKS_DIR, f"{name}.ipynb"), as_version=4)


def test_every_notebook_is_generated_and_tested():
  on_disk = sorted(f[:-len(".ipynb")] for f in os.listdir(NOTEBOOKS_DIR) if f.endswith(".ipynb"))
  assert on_disk == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_fresh_and_stripped(name):
  nb = _read(name)
  _, expected = _make.build(dict(zip(NAMES, _make.NOTEBOOKS))[name])
  assert nb == expected, f"{name}.ipynb differs from notebooks/_make.py: run python notebooks/_make.py"
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None
  first_md = nb.cells[0]
  assert first_md.cell_type == "markdown" and _make.badge_url(name) in first_md.source
  setup = next(c for c in nb.cells if c.cell_type == "code")
  assert "JMETA_SMALL" in setup.source and '"google.colab" in sys.modules' in setup.source


@pytest.mark.skipif(os.environ.get("JMETA_SKIP_NOTEBOOKS") == "1", reason="JMETA_SKIP_NOTEBOOKS=1")
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_small_settings(name, monkeypatch, tmp_path):
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("JMETA_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  monkeypatch.setenv("JMETA_NOTEBOOK_TMP", str(tmp_path))
  nb = _read(name)
  client = nbclient.NotebookClient(
      nb, timeout=TIMEOUT_S, kernel_name="python3",
      resources={"metadata": {"path": NOTEBOOKS_DIR}})
  client.execute()  # raises CellExecutionError on the first failing cell
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]
  assert not errors
  images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]
  assert images, f"{name} drew no picture"
