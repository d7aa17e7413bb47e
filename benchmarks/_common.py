"""Shared helpers for the benchmark scripts: timing, result files, the reference data folder."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# DETCLI_BENCH_RESULTS redirects the result files (the smoke tests run every benchmark small, elsewhere)
RESULTS = Path(os.environ.get("DETCLI_BENCH_RESULTS") or Path(__file__).parent / "results")
sys.path.insert(0, str(ROOT))


def shared_dir() -> Path | None:
    for cand in (os.environ.get("DETCLI_SHARED"), ROOT.parent / "shared"):
        if cand and (Path(cand) / "data").is_dir():
            return Path(cand)
    return None


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"-> {path}")
    return path
