#!/usr/bin/env bash
# Fills .gpu/ (git-ignored; the device tool carries it) before the GPU run, on a CPU machine:
#   .gpu/whl/       wheels for Python 3.12 x86_64 of what the GPU image lacks
#   .gpu/omniglot/  Omniglot prepared as array_record, with jmeta's 28x28 cache
#
#   bash benchmarks/gpu/prepare.sh                # PYTHON: a Python with jmeta's dependencies
#   OMNIGLOT=/path/to/omniglot bash benchmarks/gpu/prepare.sh
#
# OMNIGLOT is a folder holding images_background.zip and images_evaluation.zip (default
# ../shared/data/omniglot, then /work/shared/data/omniglot); it is only read.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
if [ -z "${OMNIGLOT:-}" ]; then
  for d in ../shared/data/omniglot /work/shared/data/omniglot; do
    [ -f "$d/images_background.zip" ] && OMNIGLOT="$d" && break
  done
fi
[ -f "${OMNIGLOT:-}/images_background.zip" ] || { echo "prepare.sh: set OMNIGLOT to the archives' folder" >&2; exit 2; }

# tensorflow-datasets and what it imports that the image lacks (the image has absl-py,
# etils, numpy, pillow, protobuf, psutil, pyarrow, requests, six, tqdm, wrapt), and the
# PyTorch peers higher and TorchOpt (optree, graphviz). Versions: the project's venv's.
WHEELS=(tensorflow-datasets==4.9.10 array_record==0.8.6 dm-tree==0.1.10 immutabledict==4.3.1
        simple-parsing==0.1.9 docstring_parser==0.18.0 tensorflow-metadata==1.21.0
        googleapis-common-protos==1.76.0 termcolor==3.3.0 toml==0.10.2 importlib_resources==7.1.0
        higher==0.2.1 torchopt==0.7.3 optree==0.20.0 graphviz==0.21)
mkdir -p .gpu/whl .gpu/omniglot
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .gpu/whl "${WHEELS[@]}"
# promise (imported by tensorflow-datasets) is published as a source archive only: a
# pure-Python wheel built here.
compgen -G ".gpu/whl/promise-*.whl" >/dev/null || \
  "$PY" -m pip wheel -q --no-deps -w .gpu/whl promise==2.3

# Omniglot: validated, written as array_record and cached at 28x28 (what `jmeta train` loads).
JAX_PLATFORMS=cpu PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$OMNIGLOT" <<'PY'
import sys
from jmeta.data import load_omniglot
s = load_omniglot(".gpu/omniglot", manual_dir=sys.argv[1])
print("prepared Omniglot in .gpu/omniglot:", {k: tuple(v.shape) for k, v in s._asdict().items()})
PY
du -sh .gpu/whl .gpu/omniglot
total=$(du -sm .gpu | cut -f1)
echo "prepare.sh: .gpu holds ${total} MiB (the device tool carries at most 64 MiB with the tree)"
[ "$total" -le 60 ] || { echo "prepare.sh: .gpu is too large to carry" >&2; exit 1; }
