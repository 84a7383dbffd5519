"""The tutorial notebooks: kept as jupytext sources, committed without outputs, run with small settings.

Each ``notebooks/NN_name.ipynb`` must be the conversion of its source
``notebooks/NN_name.py`` (``python -m notebooks.sync``), with no outputs, and its
badge and setup cell must be the ones derived from ``[project.urls]``. Each
notebook is executed in a fresh Jupyter kernel by nbclient with
``JMETA_SMALL=1`` (read by its setup cell); any cell error fails the test. One
more test builds the wheel, installs it into a fresh venv and runs notebook 01
against it. Set ``JMETA_SKIP_NOTEBOOKS=1`` to skip the executions (e.g. without
a Jupyter kernel).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")
from notebooks import sync  # noqa: E402  (needs jupytext)

NAMES = sync.names()
TIMEOUT_S = 600  # seconds per cell: a guard against hangs, not a speed test (CPU may be shared)
skip_executions = pytest.mark.skipif(os.environ.get("JMETA_SKIP_NOTEBOOKS") == "1",
                                     reason="JMETA_SKIP_NOTEBOOKS=1")


def _read(name):
  return nbformat.read(sync.notebook_path(name), as_version=4)


def _without_ids(nb):
  nb = json.loads(nbformat.writes(nb))
  for cell in nb["cells"]:
    del cell["id"]
  return nb


def _execute(nb, *, cwd, kernel_name="python3"):
  """Runs ``nb`` top to bottom (in place) and checks that no cell failed and some cell drew a picture."""
  nbclient = pytest.importorskip("nbclient")
  client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=kernel_name,
                                   resources={"metadata": {"path": cwd}})
  client.execute()  # raises CellExecutionError on the first failing cell
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook drew no picture"


@pytest.fixture
def small_settings(monkeypatch):
  monkeypatch.setenv("JMETA_SMALL", "1")
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def test_every_notebook_has_a_source():
  on_disk = sorted(f[:-len(".ipynb")] for f in os.listdir(sync.HERE) if f.endswith(".ipynb"))
  assert NAMES and on_disk == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_its_source_converted_and_stripped(name):
  nb = _read(name)
  for cell in nb.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, (
          f"{name}.ipynb has outputs: run python -m notebooks.sync")
  # Cell ids are left out: `jupytext --sync` keeps the ids a notebook had.
  expected = nbformat.reads(sync.notebook_text(name), as_version=4)
  assert _without_ids(nb) == _without_ids(expected), (
      f"{name}.ipynb is not the conversion of {name}.py: run python -m notebooks.sync")


@pytest.mark.parametrize("name", NAMES)
def test_source_is_python_with_the_shared_cells(name):
  with open(sync.source_path(name), encoding="utf-8") as f:
    text = f.read()
  compile(text, sync.source_path(name), "exec")  # a script: no magics outside comments
  assert text == sync.source_text(name), (
      f"{name}.py: its badge or setup cell is not the shared one: run python -m notebooks.sync")
  nb = sync.read_source(name)
  assert nb.cells[0].source.split("\n")[0] == sync.badge(name)
  setup = next(c for c in nb.cells if c.cell_type == "code")
  assert setup.source == sync.setup_source()
  assert "jmeta @ git+https://github.com/jmeta-dev/jmeta" in setup.source


def test_the_home_is_project_urls_and_every_colab_link_points_there():
  assert sync.github_repo() == "jmeta-dev/jmeta"
  assert (sync.badge_url("01_maml_sinusoid")
          == "https://colab.research.google.com/github/jmeta-dev/jmeta/blob/main/notebooks/01_maml_sinusoid.ipynb")
  for path in sync.READMES:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    linked = sync.COLAB_LINK.findall(text)
    assert sorted(linked) == NAMES, f"{path}: one Colab badge per notebook"
    assert text == sync.readme_text(path), f"{path}: a Colab link is not the project's: run python -m notebooks.sync"


@pytest.mark.parametrize("url", ["", "https://gitlab.com/jmeta-dev/jmeta", "https://github.com/jmeta-dev"])
def test_a_repository_that_is_not_on_github_is_a_clear_error(url, tmp_path):
  pyproject = tmp_path / "pyproject.toml"
  pyproject.write_text(f'[project]\nname = "x"\n[project.urls]\nRepository = "{url}"\n')
  with pytest.raises(ValueError, match=r"\[project.urls\] Repository must be https://github.com/<owner>/<name>"):
    sync.github_repo(str(pyproject))


def test_sync_refuses_to_overwrite_a_notebook_edited_after_its_source(tmp_path, monkeypatch, capsys):
  for name in NAMES[:1]:
    for path in (sync.source_path(name), sync.notebook_path(name)):
      (tmp_path / os.path.basename(path)).write_bytes(open(path, "rb").read())
  monkeypatch.setattr(sync, "HERE", str(tmp_path))
  monkeypatch.setattr(sync, "READMES", ())
  assert sync.main(["--check"]) == 0
  edited = _read(NAMES[0])
  edited.cells[-1].source += "\nmore text"
  nbformat.write(edited, str(tmp_path / f"{NAMES[0]}.ipynb"))
  os.utime(tmp_path / f"{NAMES[0]}.py", (0, 0))  # the source is older
  assert sync.main([]) == 1
  assert "was edited after its source" in capsys.readouterr().err
  assert _read(NAMES[0]).cells[-1].source.endswith("more text")  # untouched
  os.utime(tmp_path / f"{NAMES[0]}.ipynb", (0, 0))  # now the source is newer: it wins
  assert sync.main([]) == 0 and sync.main(["--check"]) == 0
  assert not _read(NAMES[0]).cells[-1].source.endswith("more text")


@skip_executions
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_with_small_settings(name, small_settings):
  del small_settings
  _execute(_read(name), cwd=sync.HERE)


def _wheel_files(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    (metadata,) = [n for n in names if re.fullmatch(r"jmeta-[^/]+\.dist-info/METADATA", n)]
    return names, z.read(metadata).decode()


def _package_files(root):
  """The files below ``root/jmeta``, as paths relative to ``root``."""
  return sorted(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
                for d, _, files in os.walk(os.path.join(root, "jmeta")) for f in files)


@skip_executions
def test_notebook_01_runs_against_the_installed_wheel(tmp_path, small_settings, monkeypatch):
  """Builds the wheel, installs it (not editable) into a fresh venv, runs notebook 01 in a kernel of that venv."""
  del small_settings
  src, dist, venv, run = (tmp_path / d for d in ("src", "dist", "venv", "run"))
  run.mkdir()
  # Build from a copy of what the sdist would hold, so nothing is written into the checkout.
  src.mkdir()
  for f in ("pyproject.toml", "README.md"):
    (src / f).write_bytes(open(os.path.join(sync.ROOT, f), "rb").read())
  shutil.copytree(os.path.join(sync.ROOT, "jmeta"), src / "jmeta",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
  # No build isolation: the test extra brings setuptools and wheel, so nothing is downloaded.
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(dist), str(src)], check=True, cwd=tmp_path)
  (wheel,) = dist.glob("jmeta-*.whl")
  names, metadata = _wheel_files(wheel)
  assert sorted(n for n in names if n.startswith("jmeta/")) == _package_files(str(src)), (
      "the wheel must hold every file of the package (data files need [tool.setuptools.package-data])")
  assert "jmeta/py.typed" in names
  for label in ("Homepage", "Repository", "Documentation"):
    assert re.search(rf"^Project-URL: {label}, https://github.com/{sync.github_repo()}", metadata, re.M)

  # A fresh venv whose own site-packages gets the wheel; the dependencies (jax, ipykernel, ...) come from
  # this interpreter's site-packages, listed after it by a .pth file (.pth files found there, such as an
  # editable install of jmeta, are not run).
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        check=True, capture_output=True, text=True).stdout.strip()
  deps = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
  with open(os.path.join(site, "_test_dependencies.pth"), "w") as f:
    f.write("\n".join(dict.fromkeys(deps)) + "\n")
  subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", site,
                  str(wheel)], check=True, cwd=tmp_path)

  kernels = tmp_path / "jupyter" / "kernels" / "jmeta-wheel"
  kernels.mkdir(parents=True)
  (kernels / "kernel.json").write_text(json.dumps({
      "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "jmeta wheel", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  monkeypatch.delenv("PYTHONPATH", raising=False)  # the source tree must not be on the kernel's path
  nb = _read("01_maml_sinusoid")
  nb.cells.append(nbformat.v4.new_code_cell("import jmeta\nprint(sys.prefix, jmeta.__file__, sep='\\n')"))
  _execute(nb, cwd=str(run), kernel_name="jmeta-wheel")
  printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
  prefix, module = printed.split()
  assert os.path.samefile(prefix, venv)
  assert os.path.samefile(module, os.path.join(site, "jmeta", "__init__.py"))
