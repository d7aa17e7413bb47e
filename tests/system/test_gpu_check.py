"""`just gpu-check` on a machine without CUDA: one line, exit 0 (what CI runs); its CPU dry mode runs the rest."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_gpu_box_script_without_cuda(tmp_path):
    """The one script a GPU box without `just` runs: reports the interpreter, passes its arguments on, keeps the
    log in --out, and exits 0 with the skip line where no CUDA device is visible."""
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHON": sys.executable,
        "DETCLI_GPU_SITE": str(tmp_path / "site"),
        "DETCLI_BENCH_RESULTS": str(tmp_path / "results"),
    }
    out = tmp_path / "out"
    r = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_box.sh"), "--out", str(out), "--steps", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.startswith("gpu_box: python ") and "0 GPU(s)" in r.stdout
    assert (out / "gpu_check.log").read_text() == "no CUDA device: skipped\n"
    assert not (out / "gpu_check.json").exists()


@pytest.mark.slow
def test_gpu_check_dry_mode_runs_every_part_on_cpu(tmp_path):
    """The CUDA path's code at toy sizes on the CPU (bf16 autocast, gloo): AMP training read back from the run
    history, torchrun + SIGKILL + --resume with contiguous step rows, torch/ONNX agreement and the bench
    breakdown with the streamed column. ~30 s of CPU time (50 s wall on a 2-core box under load 2-6)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DETCLI_BENCH_RESULTS": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--steps", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "all checks passed" in r.stdout
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["gpu"] == "none (cpu dry run)" and res["cuda"] is None and res["steps"] == 3

    train = res["train_bf16"]
    assert train["amp"] == "bf16" and train["run_device"] == "cpu" and train["finite"]
    assert train["steps_requested"] == 3 and train["steps"] >= 3  # --steps honoured, in whole epochs
    assert train["first_loss"] > 0 and train["last_loss"] > 0 and train["max_rss_mb"] > 0

    ddp, resume = res["ddp"], res["resume"]
    assert ddp["ok"] and ddp["backend_expected"] == "gloo"
    assert ddp["process_group"] == "distributed: 1 rank(s) over gloo on cpu"
    assert ddp["replica_checks"] and ddp["epochs_before_kill"] >= 1
    assert resume["ok"] and resume["status_after_kill"] == "interrupted" and resume["status"] == "finished"
    assert resume["duplicate_step_rows"] == 0 and resume["steps_contiguous"]
    assert resume["step_rows"] == resume["expected_step_rows"] > 0
    assert resume["process_group_rejoined"] and resume["event"].startswith("resumed from last.pt")

    inference = res["inference"]
    for name in ("torch", "onnx"):
        row = inference[name]
        assert row["top_detection_equal"], (name, row)
        assert row["max_abs_box_diff_px"] < 1.0 and row["max_abs_score_diff"] < 1e-3
        bench = row["bench"]
        for k in ("read_ms", "pre_ms", "infer_ms", "post_ms", "model_only_ms", "streamed_ms"):
            assert bench[k] is not None and bench[k] >= 0, (name, k, bench)
    assert inference["onnx"]["providers"] == ["CPUExecutionProvider"]
