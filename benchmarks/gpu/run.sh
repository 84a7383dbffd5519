#!/usr/bin/env bash
# The GPU run: bash benchmarks/gpu/run.sh OUT [options of python -m benchmarks.gpu.run]
#
# Installs the wheels that benchmarks/gpu/prepare.sh put in .gpu/whl (the packages the
# machine's image lacks: tensorflow-datasets, array_record, higher, TorchOpt, ...) with
# --no-deps into a target folder, so the image's own jax, flax, optax and torch are used;
# jmeta and the harness run from this tree (PYTHONPATH). Then runs every step, each
# time-boxed, and writes report.md, report.json, env.txt, pytest.txt, speed.md,
# speed.json, train.txt and run.log into OUT (default $OUT).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
out="${1:-${OUT:-}}"
[ $# -gt 0 ] && shift
if [ -z "$out" ]; then
  echo "usage: bash benchmarks/gpu/run.sh OUT [options]  (or set OUT)" >&2
  exit 2
fi
mkdir -p "$out"
PY="${PYTHON:-python3}"
SITE="${JMETA_GPU_SITE:-/tmp/jmeta-gpu-site}"
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .gpu/whl/*.whl || { echo "run.sh: installing .gpu/whl failed" >&2; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
"$PY" -m benchmarks.gpu.run --out "$out" "$@" 2>&1 | tee "$out/run.log"
exit "${PIPESTATUS[0]}"
