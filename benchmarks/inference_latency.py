"""End-to-end latency per backend (read + pre + graph + post) vs the same compiled graph timed alone, at 640,
for dfine-n and dfine-s. Target (issue 7): read + pre + post overhead <= 10% of the model time.

Run: `python benchmarks/inference_latency.py [--runs 30]`. Weights are random (latency does not depend on them).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import save, shared_dir

from engine.bench.runner import bench_predictor, host_cpu
from engine.export.run_export import export_checkpoint
from engine.infer import Predictor
from engine.models import build_model, save_checkpoint


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", default="n,s")
    args = ap.parse_args()
    sd = shared_dir()
    images = sorted((sd / "data" / "visdrone-det-mini" / "images").glob("*.jpg")) if sd else []
    if not images:
        raise SystemExit("needs ../shared/data/visdrone-det-mini/images (real images to read)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            torch.manual_seed(0)
            model = build_model(f"dfine-{size}")
            w = save_checkpoint(
                Path(tmp) / f"{size}.pt", model, class_names=[str(i) for i in range(80)], imgsz=(640, 640)
            )
            arts = {
                "torch": w,
                "onnx": export_checkpoint(w, "onnx").path,
                "openvino": export_checkpoint(w, "openvino").path,
            }
            for backend, path in arts.items():
                p = Predictor.from_path(path, backend=backend, conf=0.5)
                r = bench_predictor(p, images, runs=args.runs, warmup=5, artifact=str(path))
                overhead = r.read_ms + r.pre_ms + r.post_ms
                rows.append(
                    {
                        "model": f"dfine-{size}",
                        "backend": backend,
                        "end_to_end_ms": r.mean_ms,
                        "model_only_ms": r.model_only_ms,
                        "read_ms": r.read_ms,
                        "pre_ms": r.pre_ms,
                        "post_ms": r.post_ms,
                        "overhead_pct_of_model": 100 * overhead / r.model_only_ms,
                        "read_pct_of_model": 100 * r.read_ms / r.model_only_ms,
                        "pre_post_pct_of_model": 100 * (r.pre_ms + r.post_ms) / r.model_only_ms,
                    }
                )
                print(
                    f"dfine-{size} {backend:9s} end-to-end {r.mean_ms:7.1f} ms  model only {r.model_only_ms:7.1f} ms"
                    f"  read+pre+post {overhead:5.1f} ms = {100 * overhead / r.model_only_ms:4.1f}% of model"
                    f" (read {r.read_ms:.1f} ms = {100 * r.read_ms / r.model_only_ms:.1f}%,"
                    f" pre+post {r.pre_ms + r.post_ms:.1f} ms = {100 * (r.pre_ms + r.post_ms) / r.model_only_ms:.1f}%)"
                )
    out = {
        "host_cpu": host_cpu(),
        "imgsz": 640,
        "rows": rows,
        "target": "overhead <= 10% of model time",
        "official_onnx": "not measured: the official repository needs torchvision, which does not install beside "
        "the CPU torch wheel used here",
    }
    save("inference_latency", out)
    return out


if __name__ == "__main__":
    main()
