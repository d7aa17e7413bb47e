"""Every benchmark script runs end to end (small) and writes its result file: `just bench` cannot rot unnoticed.

The numbers are not checked here (timing tests on shared machines only measure the neighbours); the benchmarks'
own targets are read from their result files by people, and quoted in the issues.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "run_store": ([], ["rows_per_s", "query_last_1000_ms"]),
    "dashboard_refresh": ([], ["refresh_ms_median"]),
    "eval_speed": (["--images", "60", "--dets", "20"], ["speedup", "map50_95_detcli"]),
    "train_throughput": (["--steps", "3"], ["dfine-n@256", "dfine-n@640"]),
    "model_speed": (["--runs", "1"], ["dfine-n", "dfine-s"]),
    "inference_latency": (["--runs", "2", "--sizes", "n"], ["rows"]),
    "dataloader": (["--samples", "16"], ["detcli_workers_0_img_s", "detcli_workers_2_img_s"]),
    "data_check_scale": (
        ["--sizes", "300", "600", "--rounds", "1"],
        ["rows", "growth_600_over_300", "peak_pss_mib", "native_kernels"],
    ),
}
NEEDS_SHARED = {"inference_latency", "dataloader"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_benchmark_runs_and_writes_results(name, tmp_path, request):
    if name in NEEDS_SHARED:
        request.getfixturevalue("data_dir")  # skips where ../shared/data is absent
    args, keys = CASES[name]
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DETCLI_OFFICIAL_DFINE", "DETCLI_PEER_PY", "ULTRALYTICS_PY")  # peers are measured by hand
    }
    env["DETCLI_BENCH_RESULTS"] = str(tmp_path)
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert all(k in result for k in keys), sorted(result)


# one round, dfine-n, batch 1 at 256 (the smallest input with enough encoder tokens for 300 queries)
SMALL_PEER_ARGS = ["--rounds", "1", "--sizes", "n", "--batch", "1", "--imgsz", "256", "--eval-images", "20"]
SMALL_PEER_ARGS += ["--loader-samples", "4", "--loader-batch", "2", "--loader-workers", "0", "--ov-runs", "1"]


def _tiny_visdrone(root: Path) -> Path:
    """Two real-format VisDrone images (JPEG, annotation txt, YOLO labels): the loader and OpenVINO parts' data."""
    import cv2
    import numpy as np

    for d in ("images", "annotations", "labels_yolo"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        img = rng.integers(0, 255, (240, 320, 3), np.uint8)
        cv2.imwrite(str(root / "images" / f"im{i}.jpg"), img)
        (root / "annotations" / f"im{i}.txt").write_text("10,20,60,40,1,4,0,0\n150,100,30,50,1,1,0,0\n")
        (root / "labels_yolo" / f"im{i}.txt").write_text(
            "3 0.125 0.166 0.1875 0.166\n0 0.515 0.520 0.094 0.208\n"
        )
    return root


def _peer_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DFINE_SEG_PY", "DFINE_SEG_WORKER")}
    env["DETCLI_BENCH_RESULTS"] = str(tmp_path)
    env.update(extra)
    return env


@pytest.mark.slow
def test_peer_dfine_seg_runs_against_a_fake_peer(tmp_path):
    fake = REPO / "tests" / "fixtures" / "fake_dfine_seg_peer.py"
    data = _tiny_visdrone(tmp_path / "visdrone")
    args = [*SMALL_PEER_ARGS, "--loader-data", str(data), "--ov-images", str(data / "images")]
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peer_dfine_seg.py"), *args],
        cwd=REPO,
        env=_peer_env(tmp_path, DFINE_SEG_PY=sys.executable, DFINE_SEG_WORKER=str(fake)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "peer_dfine_seg.json").read_text())
    assert result["peer"]["peer"] == "fake-dfine-seg"
    assert result["train_step"]["dfine-n"]["ours_ms"] > 0 and result["train_step_ratio"] > 0
    assert result["eval_ratio"] > 0 and 0 <= result["eval"]["theirs_f1"] <= 1
    assert 0 <= result["eval"]["ours_f1"] <= 1 and 0 <= result["eval"]["ours_map50"] <= 1
    # loader: both sides delivered every sample of the epoch
    assert result["loader_ratio"] > 0 and result["loader"]["samples"] == 4
    assert result["loader"]["workers"]["0"]["errors"] == []
    # OpenVINO: our export and the fake's IR, end to end and model only, and both graphs in our runtime
    assert result["openvino_end_to_end_ratio"] > 0 and result["openvino"]["model_only"]["ratio"] > 0
    assert result["openvino"]["sets"]["test"]["images"] == 2
    same = result["openvino"]["same_runtime"]
    assert same["ours_ms"] > 0 and same["dfine-seg_ms"] > 0
    assert set(result["measured"]) == {"train_step", "loader", "openvino", "eval"}


@pytest.mark.slow
def test_peer_dfine_seg_only_reruns_a_part_and_keeps_the_others(tmp_path):
    fake = REPO / "tests" / "fixtures" / "fake_dfine_seg_peer.py"
    env = _peer_env(tmp_path, DFINE_SEG_PY=sys.executable, DFINE_SEG_WORKER=str(fake))
    old = {"train_step_ratio": 0.5, "train_step": {"dfine-n": {"ratio": 0.5}}, "loader_ratio": 2.0}
    old["measured"] = {"train_step": {"rounds": 9}}
    (tmp_path / "peer_dfine_seg.json").write_text(json.dumps(old))
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peer_dfine_seg.py"), *SMALL_PEER_ARGS, "--only", "eval"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "peer_dfine_seg.json").read_text())
    assert result["train_step_ratio"] == 0.5 and result["loader_ratio"] == 2.0  # kept
    assert result["eval_ratio"] > 0 and set(result["measured"]) == {"train_step", "eval"}
    assert result["measured"]["train_step"] == {"rounds": 9}


def test_peer_dfine_seg_skips_in_one_line_without_the_peer_venv(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peer_dfine_seg.py")],
        cwd=REPO,
        env=_peer_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().count("\n") == 0 and "skipped" in r.stdout
    assert not (tmp_path / "peer_dfine_seg.json").exists()
