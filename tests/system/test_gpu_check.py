"""`just gpu-check` on a machine without CUDA: one line, exit 0 (what CI runs)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_skips_cleanly_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DETCLI_BENCH_RESULTS": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "no CUDA device: skipped"
    assert not (tmp_path / "gpu_check.json").exists()
