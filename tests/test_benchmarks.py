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
