#!/usr/bin/env bash
# Everything GPU-related in one run on a machine with an NVIDIA GPU (H100/H200), torch with
# CUDA and nvidia-ml-py: the NVML meter's own checks, the gate end to end, and the test
# suite on a machine that has real counters (it must not depend on their absence).
# Results go to $OUT (default: ./gpu-check). Optional wheels in .device/wheels (the
# package, pytest-xdist, execnet) are installed first, for machines without a registry.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,power.limit,temperature.gpu --format=csv
    python -c "import sys, torch, pytest; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'pytest', pytest.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

if compgen -G ".device/wheels/*.whl" >/dev/null; then
    python -m pip install -q --no-deps --no-index .device/wheels/*.whl 2>&1 | tail -3
fi

if [ -z "${SKIP_METER_CHECK:-}" ]; then
    echo "== NVML meter (benchmarks/gpu_check.py)"
    timeout 120 python benchmarks/gpu_check.py --json "$OUT/gpu_check.json" 2>&1 \
        | tee "$OUT/gpu_check.log"
fi

echo "== the gate end to end (benchmarks/gpu_gate_check.py)"
timeout 420 python benchmarks/gpu_gate_check.py --out "$OUT/gpu_gate_check.json" 2>&1 \
    | tee "$OUT/gpu_gate_check.log"

echo "== the test suite beside a real GPU"
# Other plugins of the machine's environment (pytest-benchmark) stay out of the suite's run.
timeout "${TESTS_TIMEOUT:-240}" python -m pytest tests -q -p no:cacheprovider -p no:benchmark \
    -p xdist -n 8 --deselect tests/test_examples.py --tb=short > "$OUT/tests.log" 2>&1
python -m pip list 2>/dev/null > "$OUT/pip-list.txt"
grep -m 1 -A 40 "^___" "$OUT/tests.log"
tail -5 "$OUT/tests.log"
