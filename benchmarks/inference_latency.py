"""End-to-end latency per backend (read + pre + graph + post) vs the same compiled graph timed alone, at 640,
for dfine-n and dfine-s. Target (issue 7): read + pre + post overhead <= 10% of the model time.

Where a local copy of the official repository exists (DETCLI_OFFICIAL_DFINE=path, never committed), its deployment
graph (model + post-processor, exported to ONNX by a python with torchvision: DETCLI_PEER_PY, see `just peer-venv`)
is timed model-only in the same runtimes beside ours, alternating the two.

Run: `python benchmarks/inference_latency.py [--runs 30]`. Weights are random (latency does not depend on them).
"""

from __future__ import annotations

import argparse
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

from engine.bench.runner import bench_predictor, host_cpu
from engine.export.openvino_export import export_openvino
from engine.export.run_export import export_checkpoint
from engine.infer import Predictor
from engine.infer.backends import OnnxBackend, OpenVinoBackend
from engine.models import build_model, save_checkpoint

OFFICIAL_EXPORT = r"""
import sys, torch
where, size, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, where)
from src.core import YAMLConfig

cfg = YAMLConfig(f"{where}/configs/dfine/dfine_hgnetv2_{size}_coco.yml", HGNetv2={"pretrained": False})


class Deployed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model, self.post = cfg.model.deploy(), cfg.postprocessor.deploy()

    def forward(self, images, orig_target_sizes):
        return self.post(self.model(images), orig_target_sizes)


torch.onnx.export(
    Deployed().eval(), (torch.rand(1, 3, 640, 640), torch.tensor([[640, 640]])), out,
    input_names=["images", "orig_target_sizes"], output_names=["labels", "boxes", "scores"],
    opset_version=17, dynamo=False, do_constant_folding=True,
)
"""


def official_graphs(size: str, ours: dict[str, Path], tmp: Path, runs: int) -> list[dict] | str:
    """Model-only latency of the official deployment graph beside ours, per runtime, alternating rounds."""
    where = os.environ.get("DETCLI_OFFICIAL_DFINE")
    if not where:
        return "not measured (set DETCLI_OFFICIAL_DFINE to a local checkout and DETCLI_PEER_PY)"
    onnx_path = tmp / f"official-{size}.onnx"
    python = os.environ.get("DETCLI_PEER_PY", sys.executable)
    r = subprocess.run(
        [python, "-c", OFFICIAL_EXPORT, where, size, str(onnx_path)], capture_output=True, text=True
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


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", default="n,s")
    args = ap.parse_args()
    sd = shared_dir()
    images = sorted((sd / "data" / "visdrone-det-mini" / "images").glob("*.jpg")) if sd else []
    if not images:
        raise SystemExit("needs ../shared/data/visdrone-det-mini/images (real images to read)")
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
            official[f"dfine-{size}"] = official_graphs(size, arts, Path(tmp), max(10, args.runs // 2))
    out = {
        "host_cpu": host_cpu(),
        "imgsz": 640,
        "rows": rows,
        "target": "overhead <= 10% of model time",
        "official_deployment_graph": official,
    }
    save("inference_latency", out)
    return out


if __name__ == "__main__":
    main()
