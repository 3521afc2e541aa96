#!/usr/bin/env bash
# One prepared run on a lent GPU machine: the suite on CUDA, then the GPU occlusion table.
# Its image has torch and timm; anything else travels as wheels in .whl/: bash benchmarks/gpu_wheels.sh.
#   bash benchmarks/gpu_check.sh            # writes $OUT/pytest.log and $OUT/gpu.md when OUT is set
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/featviz-gpu}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
# The browser tests need Chromium and JupyterLab, which the device image lacks.
FEATVIZ_TEST_DEVICE=cuda timeout 300 python3 -m pytest -q --maxfail=25 -m "not e2e" -p no:cacheprovider \
    --timeout 120 2>&1 | tee "$out/pytest.log"
timeout 200 python3 benchmarks/gpu.py 2>&1 | tee "$out/gpu.md"
# Issue 12: optimization, 1 and 16 channels x 512 steps, vs the reference loop (and Lucent, if carried).
timeout 150 python3 benchmarks/optimize.py --device cuda 2>&1 | tee "$out/optimize.md"
