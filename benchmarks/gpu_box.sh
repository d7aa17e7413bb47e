#!/usr/bin/env bash
# gpu-check on a GPU box with a CUDA PyTorch image and no network (no `just`, no .venv needed there):
#   here:   just gpu-wheels              (the wheels that image lacks -> .whl/, ~9 MiB)
#   there:  bash benchmarks/gpu_box.sh [--out DIR] [--steps N]
# It installs .whl/*.whl into a throw-away folder (never into the image's site-packages), prints what it runs on,
# runs benchmarks/gpu_check.py with the remaining arguments and copies its JSON and log to DIR when given.
# Exit status: gpu_check's (0: every check passed, or no CUDA device; 1: some check failed; see the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
out=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
python=${PYTHON:-python3}
site=${DETCLI_GPU_SITE:-/tmp/detcli-gpu-site}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$python" -c 'import sys, torch; print(f"gpu_box: python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.version.cuda}, "
    f"{torch.cuda.device_count()} GPU(s): {[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}")'
[ -n "$out" ] && mkdir -p "$out"
status=0
if [ -n "$out" ]; then
    "$python" benchmarks/gpu_check.py ${args[@]+"${args[@]}"} 2>&1 | tee "$out/gpu_check.log" || status=$?
    # absent when skipped (no CUDA device)
    cp "${DETCLI_BENCH_RESULTS:-benchmarks/results}/gpu_check.json" "$out/" 2>/dev/null || true
else
    "$python" benchmarks/gpu_check.py ${args[@]+"${args[@]}"} || status=$?
fi
exit "$status"
