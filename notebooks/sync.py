"""Regenerates the notebooks from their sources: ``python -m notebooks.sync [--check]``.

The project's home is ``[project.urls] Repository`` in ``pyproject.toml``. From
it come every notebook's Colab badge (the first line of its first cell), its
setup cell (the first code cell: installs jmeta on Colab, reads the
``JMETA_SMALL`` switch) and the Colab links in the READMEs. This script writes
those into the jupytext sources (``notebooks/NN_name.py``) and the READMEs,
then converts every source into its ``.ipynb`` with no outputs and stable cell
ids. ``--check`` writes nothing and exits 1 if any file is not what it would
write; ``tests/test_notebooks.py`` checks the same.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib

import jupytext
import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
READMES = (os.path.join(ROOT, "README.md"), os.path.join(HERE, "README.md"))
BRANCH = "main"  # the branch the Colab badges open
FORMAT = "py:percent"
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*?/notebooks/(\w+)\.ipynb")
_SOURCE_NAME = re.compile(r"\d\d_\w+\.py")

SETUP_TEMPLATE = '''\
# Setup. On Colab this installs jmeta (a CPU runtime is enough; a GPU one is faster).
# JMETA_SMALL=1 shrinks every setting to a smoke test: that is how CI runs this notebook.
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{requirement}"], check=True)
SMALL = os.environ.get("JMETA_SMALL", "0") == "1"
print("small settings (CI)" if SMALL else "full settings")'''


def names() -> list[str]:
  """The notebooks, by their sources ``notebooks/NN_name.py`` (names without extension)."""
  return sorted(f[:-len(".py")] for f in os.listdir(HERE) if _SOURCE_NAME.fullmatch(f))


def github_repo(pyproject: str = PYPROJECT) -> str:
  """``owner/name`` of the project's home, from ``[project.urls] Repository``."""
  with open(pyproject, "rb") as f:
    urls = tomllib.load(f)["project"].get("urls", {})
  url = urls.get("Repository", "")
  match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)/?", url)
  if match is None:
    raise ValueError(f"{pyproject}: [project.urls] Repository must be https://github.com/<owner>/<name>,"
                     f" got {url!r}")
  return match.group(1)


def badge_url(name: str, repo: str | None = None) -> str:
  """The Colab URL of notebook ``name`` (without ``.ipynb``)."""
  return (f"https://colab.research.google.com/github/{repo or github_repo()}/blob/{BRANCH}"
          f"/notebooks/{name}.ipynb")


def badge(name: str, repo: str | None = None) -> str:
  """The markdown of the 'Open in Colab' badge of notebook ``name``."""
  return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"({badge_url(name, repo)})")


def setup_source(repo: str | None = None) -> str:
  """The source of every notebook's first code cell."""
  return SETUP_TEMPLATE.format(requirement=f"jmeta @ git+https://github.com/{repo or github_repo()}")


def source_path(name: str) -> str:
  return os.path.join(HERE, f"{name}.py")


def notebook_path(name: str) -> str:
  return os.path.join(HERE, f"{name}.ipynb")


def read_source(name: str) -> nbformat.NotebookNode:
  """The notebook that the jupytext source of ``name`` holds."""
  with open(source_path(name), encoding="utf-8") as f:
    return jupytext.reads(f.read(), fmt=FORMAT)


def _first_code_cell(nb: nbformat.NotebookNode) -> int:
  return next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")


def with_shared_cells(nb: nbformat.NotebookNode, name: str, repo: str) -> nbformat.NotebookNode:
  """``nb`` with its badge line and setup cell replaced by the canonical ones."""
  first = nb.cells[0]
  if first.cell_type != "markdown":
    raise ValueError(f"notebooks/{name}.py: the first cell must be markdown (the Colab badge and the title)")
  first.source = "\n".join([badge(name, repo), *first.source.split("\n")[1:]])
  nb.cells[_first_code_cell(nb)].source = setup_source(repo)
  return nb


def source_text(name: str, repo: str | None = None) -> str:
  """The text the source of ``name`` should have: as it is, with the canonical shared cells."""
  return jupytext.writes(with_shared_cells(read_source(name), name, repo or github_repo()), fmt=FORMAT)


def notebook_of_source(name: str) -> nbformat.NotebookNode:
  """The ``.ipynb`` of ``name`` as converted from its source: no outputs, ids ``NN-00``, ``NN-01``, ..."""
  nb = read_source(name)
  nb.nbformat, nb.nbformat_minor = 4, 5
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"{name[:2]}-{i:02d}"
  nbformat.validate(nb)
  return nb


def notebook_text(name: str) -> str:
  return jupytext.writes(notebook_of_source(name), fmt="ipynb") + "\n"


def readme_text(path: str, repo: str | None = None) -> str:
  """README ``path`` with each Colab link pointing at the project's home."""
  repo = repo or github_repo()
  with open(path, encoding="utf-8") as f:
    return COLAB_LINK.sub(lambda m: badge_url(m.group(1), repo), f.read())


def _read(path: str) -> str | None:
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return f.read()


def _inputs(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
  return [(cell.cell_type, cell.source) for cell in nb.cells]


def _edited_after_source(name: str) -> bool:
  """Whether the ``.ipynb`` has other inputs than its source and is newer (edits that regenerating would lose)."""
  path = notebook_path(name)
  if not os.path.exists(path) or os.path.getmtime(path) <= os.path.getmtime(source_path(name)):
    return False
  return _inputs(nbformat.read(path, as_version=4)) != _inputs(read_source(name))


def main(argv: list[str]) -> int:
  check = "--check" in argv
  if set(argv) - {"--check"}:
    print("usage: python -m notebooks.sync [--check]", file=sys.stderr)
    return 2
  repo = github_repo()
  stale = []

  def update(path, text):
    if _read(path) == text:
      return
    stale.append(os.path.relpath(path, ROOT))
    if not check:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text)

  for name in names():
    if not check and _edited_after_source(name):
      print(f"notebooks/{name}.ipynb was edited after its source: bring the edits into notebooks/{name}.py"
            f" (jupytext --sync notebooks/{name}.ipynb), then run python -m notebooks.sync", file=sys.stderr)
      return 1
  for name in names():  # sources first: the notebooks are converted from them
    update(source_path(name), source_text(name, repo))
  for name in names():
    update(notebook_path(name), notebook_text(name))
  for path in READMES:
    update(path, readme_text(path, repo))
  if check and stale:
    print("out of date (run python -m notebooks.sync):", *stale, sep="\n  ")
    return 1
  for path in stale:
    print("wrote", path)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
