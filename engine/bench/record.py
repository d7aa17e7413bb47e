"""One benchmark row as the run history stores it (the `benchmarks` table), for local, remote and imported runs."""

from __future__ import annotations

from typing import Any


def benchmark_record(
    row: dict[str, Any],
    *,
    run_id: int | None,
    artifact: str,
    profile: str,
    host_cpu: str,
    host_gpu: str | None,
    host: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`row` is a `BenchRow.to_dict()`; `host` is the ssh destination (None: measured on this machine)."""
    return {
        "run_id": run_id,
        "artifact": artifact,
        "backend": row["backend"],
        "device_profile": profile,
        "host_cpu": host_cpu,
        "host_gpu": host_gpu,
        "host": host,
        "precision": row["precision"],
        "imgsz": row["imgsz"],
        "batch": 1,
        "latency_p50": row["p50_ms"],
        "latency_p95": row["p95_ms"],
        "latency_mean": row["mean_ms"],
        "fps": row["fps"],
        "breakdown": {
            "read": row["read_ms"],
            "pre": row["pre_ms"],
            "infer": row["infer_ms"],
            "post": row["post_ms"],
            "model_only": row["model_only_ms"],
            "streamed": row["stream_ms"],
            "rss_mb": row["rss_mb"],
            "device": row["device"],
            **(extra or {}),
        },
    }
