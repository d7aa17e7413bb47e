"""Side by side with D-FINE-seg 0.6.2 (issue 18), in one run, interleaved ours / theirs (A B A B):

- train step: D-FINE-N and S, batch 4 at 640, forward + loss + backward + optimizer step (ms, ours / theirs);
- evaluation: their Validator against our DetectionEvaluator on the same predictions and ground truth (time,
  ours / theirs; and the mAP50 / F1 each reports).

The peer runs in its own interpreter (never a dependency of detcli): DFINE_SEG_PY names a python that can
`import dfine_seg` (`just peer-venv` makes one); without it this prints one line and writes nothing. The peer
side is benchmarks/_peer_dfine_seg_worker.py (DFINE_SEG_WORKER overrides it: the tests use a fake peer that
speaks the same protocol, see benchmarks/_peer_protocol.py).

Run: `DFINE_SEG_PY=../detcli-peers/venv/bin/python python benchmarks/peer_dfine_seg.py [--rounds 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import save
from _peer_protocol import PeerWorker

from engine.config import TrainConfig
from engine.metrics.evaluator import DetectionEvaluator
from engine.models import build_criterion, build_model
from engine.train.optim import build_optimizer

WORKER = Path(__file__).parent / "_peer_dfine_seg_worker.py"


def train_step_fn(size: str, batch: int, imgsz: int):
    """Our train step at the peer's settings: random weights and images, 2 boxes an image (cxcywh, normalised)."""
    torch.manual_seed(0)
    model, criterion = build_model(f"dfine-{size}"), build_criterion(f"dfine-{size}")
    model.train()
    opt = build_optimizer(model, TrainConfig())
    x = torch.rand(batch, 3, imgsz, imgsz)
    targets = [
        {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])}
        for _ in range(batch)
    ]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        losses = criterion(model(x, targets=targets), targets)
        sum(losses.values()).backward()
        opt.step()

    return step


def eval_data(n_images: int, seed: int = 0) -> dict:
    """Predictions and ground truth both sides score: GT boxes, jittered hits, misses and false positives."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n = int(rng.integers(1, 30))
        xy = rng.uniform(0, 560, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(16, 80, (n, 2))], 1)
        gl = rng.integers(0, 5, n)
        keep = rng.random(n) < 0.8  # 20 % of the objects are missed
        pred = gt[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
        pl = np.where(rng.random(len(pred)) < 0.9, gl[keep], rng.integers(0, 5, len(pred)))
        nfp = int(rng.integers(0, 10))
        fxy = rng.uniform(0, 560, (nfp, 2))
        pred = np.concatenate([pred, np.concatenate([fxy, fxy + 40], 1)])
        pl = np.concatenate([pl, rng.integers(0, 5, nfp)])
        ps = rng.uniform(0.05, 1.0, len(pred))
        images.append(
            {
                "gt_boxes": gt.tolist(),
                "gt_labels": gl.tolist(),
                "boxes": pred.tolist(),
                "scores": ps.tolist(),
                "labels": pl.tolist(),
            }
        )
    return {"class_names": [f"c{i}" for i in range(5)], "images": images}


def our_eval(data: dict) -> dict:
    """Our evaluator on `data`: the time to add every image and compute, and the figures it reports."""
    t = time.perf_counter()
    ev = DetectionEvaluator(data["class_names"], conf=0.5, iou=0.5)
    for i, im in enumerate(data["images"]):
        ev.add(i, im["boxes"], im["scores"], im["labels"], im["gt_boxes"], im["gt_labels"])
    res = ev.compute()
    return {"ms": (time.perf_counter() - t) * 1000, "map50": res.map50, "f1": res.f1}


def _ratio(ours: list[float], theirs: list[float]) -> float | None:
    if not ours or not theirs:
        return None
    return statistics.median(ours) / statistics.median(theirs)


def main() -> dict | None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="ours/theirs pairs per measurement")
    ap.add_argument("--sizes", default="n,s")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--eval-images", type=int, default=500)
    args = ap.parse_args()
    python = os.environ.get("DFINE_SEG_PY")
    if not python:
        print("peer_dfine_seg: skipped (set DFINE_SEG_PY to a python with dfine-seg: `just peer-venv`)")
        return None
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    peer = PeerWorker(python, os.environ.get("DFINE_SEG_WORKER") or str(WORKER))
    try:
        hello = peer.ask({"task": "hello"})
        result: dict = {"peer": hello, "torch": torch.__version__, "rounds": args.rounds, "train_step": {}}
        train_ratios = []
        for size in args.sizes.split(","):
            ours_step = train_step_fn(size, args.batch, args.imgsz)
            task = {"task": "train_step", "size": size, "batch": args.batch, "imgsz": args.imgsz}
            ours_step()  # warm-up on both sides (first allocations, autograd graph caches)
            warm = peer.ask(task)
            ours, theirs, errors = [], [], []
            for _ in range(args.rounds):
                t = time.perf_counter()
                ours_step()
                ours.append((time.perf_counter() - t) * 1000)
                ans = peer.ask(task)
                (theirs.append(ans["ms"]) if "ms" in ans else errors.append(ans.get("error")))
            row = {
                "ours_ms": statistics.median(ours),
                "theirs_ms": statistics.median(theirs) if theirs else None,
                "ratio": _ratio(ours, theirs),
                "errors": sorted({e for e in [*errors, warm.get("error")] if e}),
            }
            result["train_step"][f"dfine-{size}"] = row
            if row["ratio"] is not None:
                train_ratios.append(row["ratio"])
            print(f"train step dfine-{size} b{args.batch}@{args.imgsz}: {row}")
        result["train_step_ratio"] = max(train_ratios) if train_ratios else None  # the worse size

        data = eval_data(args.eval_images)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "eval.json"
            path.write_text(json.dumps(data))
            task = {"task": "eval", "data": str(path)}
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(our_eval(data))
                theirs.append(peer.ask(task))
        ok = [t for t in theirs if "ms" in t]
        result["eval"] = {
            "images": args.eval_images,
            "ours_ms": statistics.median(o["ms"] for o in ours),
            "theirs_ms": statistics.median(t["ms"] for t in ok) if ok else None,
            "ours_map50": ours[0]["map50"],
            "ours_f1": ours[0]["f1"],
            "theirs_map50": ok[0].get("map50") if ok else None,
            "theirs_f1": ok[0].get("f1") if ok else None,
            "errors": sorted({t["error"] for t in theirs if "error" in t}),
        }
        result["eval_ratio"] = _ratio([o["ms"] for o in ours], [t["ms"] for t in ok])
        print(f"eval {args.eval_images} images: {result['eval']}")
        # not measured yet (issue 18 remains open on these): null, never a guess
        result["loader_ratio"] = None
        result["openvino_end_to_end_ratio"] = None
    finally:
        peer.close()
    save("peer_dfine_seg", result)
    return result


if __name__ == "__main__":
    main()
