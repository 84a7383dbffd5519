#!/usr/bin/env bash
# Installs the PyTorch peers of the benchmark harness (CPU only) into the
# current Python environment: torch, torchvision, higher, TorchOpt, learn2learn.
#
#   bash benchmarks/install_peers.sh            # into the active venv / python
#   PYTHON=.venv/bin/python bash benchmarks/install_peers.sh
#
# The peers are never runtime dependencies of jmeta; they are what
# `python -m benchmarks run ...` compares against. A peer that is not
# installed is reported as such, so this script is optional.
#
# Notes on the recipe (tested on Python 3.11, Linux x86_64, no GPU):
#  * torch: a CPU build. On machines whose pip has a local "+cpu" wheel use
#    TORCH_SPEC="torch==2.13.0+cpu"; elsewhere use the CPU index,
#    e.g. PIP_EXTRA_INDEX_URL pointing at PyTorch's cpu wheel index.
#  * torchvision (needed only because learn2learn imports it): the PyPI wheel is
#    built against CUDA torch, so its C++ ops (torchvision::nms, ...) do not load
#    beside CPU torch and `import torchvision` fails with
#    "operator torchvision::nms does not exist". It is installed with --no-deps
#    (so it cannot pull a CUDA torch) and benchmarks/peers/_compat.py declares
#    the two missing op schemas with torch.library before importing it. A
#    matching "+cpu" torchvision, where one is available, needs no shim.
#  * learn2learn 0.2.0 is source-only and its shipped Cython C files do not
#    compile on Python >= 3.11 (longintrepr.h): the sdist is downloaded, the C
#    files regenerated with `cythonize -3`, and it is installed with
#    --no-deps --no-build-isolation. Its imports need gym (and tqdm, scipy,
#    requests, which jmeta's environment already has).
#  * TorchOpt imports graphviz (the Python package) and optree at import time.
set -euo pipefail

PYTHON="${PYTHON:-python}"
# An absolute path: the learn2learn build below runs in a temporary folder.
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0+cpu}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.28.0}"
PIP=("$PYTHON" -m pip)

echo "== torch ($TORCH_SPEC)"
"${PIP[@]}" install "$TORCH_SPEC" || "${PIP[@]}" install "${TORCH_SPEC%+cpu}"
"$PYTHON" - <<'PY'
import torch
assert not torch.version.cuda, f"a CUDA build of torch was installed: {torch.__version__}"
print("torch", torch.__version__)
PY

echo "== torchvision ($TORCHVISION_SPEC, --no-deps) and small pure-Python deps"
"${PIP[@]}" install --no-deps "$TORCHVISION_SPEC"
"${PIP[@]}" install pillow optree graphviz gym cython tqdm scipy requests

echo "== higher, TorchOpt (--no-deps: they must not pull another torch)"
"${PIP[@]}" install --no-deps "higher==0.2.1" "torchopt==0.7.3"

echo "== learn2learn 0.2.0 from source, Cython files regenerated"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
( cd "$work"
  "${PIP[@]}" download --no-deps --no-binary :all: "learn2learn==0.2.0"
  tar xzf learn2learn-0.2.0.tar.gz
  cd learn2learn-0.2.0
  "$PYTHON" -m cython -3 learn2learn/data/*.pyx
  "${PIP[@]}" install --no-deps --no-build-isolation . )

echo "== smoke test"
"$PYTHON" - <<'PY'
import sys, os
sys.path.insert(0, os.getcwd())
from benchmarks.peers import _compat
print(_compat.peer_versions())
PY
