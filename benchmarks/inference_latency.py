"""End-to-end latency per backend (read + pre + graph + post) vs the same compiled graph timed alone, at 640,
for dfine-n and dfine-s. Target (issue 7): read + pre + post overhead <= 10% of the model time.
Also: the time per image streaming a folder (`Predictor.predict_files`, the next file read during the graph).

Where a local copy of the official repository exists (DETCLI_OFFICIAL_DFINE=path, never committed), its deployment
graph (model + post-processor, exported to ONNX by a python with torchvision: DETCLI_PEER_PY, see `just peer-venv`)
is timed model-only in the same runtimes beside ours, alternating the two.

Run: `python benchmarks/inference_latency.py [--runs 30]`. Weights are random (latency does not depend on them).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import save, shared_dir
from _official_dfine import OFFICIAL_EXPORT

from engine.bench.runner import bench_predictor, host_cpu
from engine.data.decode import read_image
from engine.export.openvino_export import export_openvino
from engine.export.run_export import export_checkpoint
from engine.infer import Predictor
from engine.infer.backends import OnnxBackend, OpenVinoBackend
from engine.models import build_model, save_checkpoint


def official_graphs(size: str, ours: dict[str, Path], tmp: Path, runs: int) -> list[dict] | str:
    """Model-only latency of the official deployment graph beside ours, per runtime, alternating rounds."""
    where = os.environ.get("DETCLI_OFFICIAL_DFINE")
    if not where:
        return "not measured (set DETCLI_OFFICIAL_DFINE to a local checkout and DETCLI_PEER_PY)"
    onnx_path = tmp / f"official-{size}.onnx"
    python = os.environ.get("DETCLI_PEER_PY", sys.executable)
    r = subprocess.run(
        [python, "-c", OFFICIAL_EXPORT, where, size, str(onnx_path), "640"], capture_output=True, text=True
    )
    if r.returncode != 0:
        return f"official export failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    theirs = {"onnx": onnx_path, "openvino": export_openvino(onnx_path, tmp / f"official-{size}.xml", {})}
    make = {"onnx": OnnxBackend, "openvino": OpenVinoBackend}
    images = np.random.default_rng(0).random((1, 3, 640, 640), np.float32)
    sizes = np.array([[640, 640]], np.int64)
    rows = []
    for backend in ("onnx", "openvino"):
        pair = {"ours": make[backend](ours[backend]), "official": make[backend](theirs[backend])}
        times: dict[str, list[float]] = {"ours": [], "official": []}
        for be in pair.values():
            be.run(images, sizes)
        for _ in range(runs):  # alternate, so drifts in machine load hit both sides alike
            for side, be in pair.items():
                t = time.perf_counter()
                be.run(images, sizes)
                times[side].append((time.perf_counter() - t) * 1e3)
        ours_ms, official_ms = statistics.median(times["ours"]), statistics.median(times["official"])
        rows.append(
            {
                "model": f"dfine-{size}",
                "backend": backend,
                "ours_model_only_ms": ours_ms,
                "official_model_only_ms": official_ms,
                "ratio_ours_over_official": ours_ms / official_ms,
            }
        )
        print(
            f"dfine-{size} {backend:9s} model only: ours {ours_ms:6.1f} ms, official {official_ms:6.1f} ms "
            f"({ours_ms / official_ms:.2f}x)"
        )
    return rows


def reader_vs_opencv(files: list[Path], rounds: int = 20) -> dict:
    """Our reader against cv2.imread on the same files, alternating file by file (same pixels; see test_decode)."""
    import cv2

    times: dict[str, list[float]] = {"read_image": [], "cv2.imread": []}
    for _ in range(rounds):
        for f in files:
            for name, read in (("read_image", read_image), ("cv2.imread", lambda p: cv2.imread(str(p)))):
                t = time.perf_counter()
                read(f)
                times[name].append((time.perf_counter() - t) * 1e3)
    ours, theirs = statistics.fmean(times["read_image"]), statistics.fmean(times["cv2.imread"])
    return {"read_image_ms": ours, "cv2_imread_ms": theirs, "speedup": theirs / ours}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", default="n,s")
    args = ap.parse_args()
    sd = shared_dir()
    images = sorted((sd / "data" / "visdrone-det-mini" / "images").glob("*.jpg")) if sd else []
    if not images:
        raise SystemExit("needs ../shared/data/visdrone-det-mini/images (real images to read)")
    # the read grows with the source resolution and the model time does not: the smallest model also runs on
    # 640x480 JPEGs, to show where the overhead stands for smaller sources
    small = sorted((sd / "data" / "bccd-voc").rglob("*.jpg"))[:6]
    image_sets = {"visdrone 1080p/765p/540p": images, **({"bccd 640x480": small} if small else {})}
    readers = {}
    for source, files in image_sets.items():
        readers[source] = reader_vs_opencv(files)
        r = readers[source]
        print(
            f"read {source}: read_image {r['read_image_ms']:.1f} ms, cv2.imread {r['cv2_imread_ms']:.1f} ms"
            f" ({r['speedup']:.2f}x faster)"
        )
    rows, official = [], {}
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
            sets = image_sets if size == "n" else dict(list(image_sets.items())[:1])
            for (backend, path), (source, files) in itertools.product(arts.items(), sets.items()):
                p = Predictor.from_path(path, backend=backend, conf=0.5)
                # streamed with read-ahead even on the CPU: it shows whether a reader thread pays beside the graph
                r = bench_predictor(p, files, runs=args.runs, warmup=5, artifact=str(path), stream=True)
                overhead = r.read_ms + r.pre_ms + r.post_ms
                rows.append(
                    {
                        "model": f"dfine-{size}",
                        "backend": backend,
                        "images": source,
                        "end_to_end_ms": r.mean_ms,
                        "model_only_ms": r.model_only_ms,
                        "read_ms": r.read_ms,
                        "pre_ms": r.pre_ms,
                        "post_ms": r.post_ms,
                        "overhead_pct_of_model": 100 * overhead / r.model_only_ms,
                        "read_pct_of_model": 100 * r.read_ms / r.model_only_ms,
                        "pre_post_pct_of_model": 100 * (r.pre_ms + r.post_ms) / r.model_only_ms,
                        "streamed_ms": r.stream_ms,
                        "streamed_overhead_pct_of_model": 100
                        * (r.stream_ms - r.model_only_ms)
                        / r.model_only_ms,
                    }
                )
                print(
                    f"dfine-{size} {backend:9s} {source:25s} end-to-end {r.mean_ms:7.1f} ms  model only {r.model_only_ms:7.1f} ms"
                    f"  read+pre+post {overhead:5.1f} ms = {100 * overhead / r.model_only_ms:4.1f}% of model"
                    f" (read {r.read_ms:.1f} ms = {100 * r.read_ms / r.model_only_ms:.1f}%,"
                    f" pre+post {r.pre_ms + r.post_ms:.1f} ms = {100 * (r.pre_ms + r.post_ms) / r.model_only_ms:.1f}%)"
                    f"; streamed {r.stream_ms:.1f} ms/image ="
                    f" {100 * (r.stream_ms - r.model_only_ms) / r.model_only_ms:+.1f}% of model"
                )
            official[f"dfine-{size}"] = official_graphs(size, arts, Path(tmp), max(10, args.runs // 2))
    out = {
        "host_cpu": host_cpu(),
        "imgsz": 640,
        "rows": rows,
        "target": "overhead <= 10% of model time",
        "reader": "engine.data.decode.read_image (libjpeg-turbo via simplejpeg; cv2.imread's pixels)",
        "reader_vs_cv2_imread": readers,
        "official_deployment_graph": official,
    }
    save("inference_latency", out)
    return out


if __name__ == "__main__":
    main()
