"""The D-FINE-seg side of benchmarks/peer_dfine_seg.py: runs in the peer's venv (DFINE_SEG_PY), speaks the line
protocol of benchmarks/_peer_protocol.py, and drives dfine-seg's own model, loss, optimizer and Validator.

Never imported by detcli: only dfine_seg, torch and numpy are needed here.
"""

from __future__ import annotations

import json
import os
import sys
import time

import dfine_seg
import torch
from dfine_seg.dl.validator import Validator
from dfine_seg.model.dfine import build_loss, build_model, build_optimizer

_steps: dict = {}
CONF = 0.5  # the benchmark scores both sides at conf 0.5, IoU 0.5


def train_step(size: str, batch: int, imgsz: int):
    """Their train step, as dfine_seg.dl.train does it in fp32 on CPU: forward, loss, backward, optimizer step."""
    key = (size, batch, imgsz)
    if key not in _steps:
        torch.manual_seed(0)
        model = build_model(size, 80, False, "cpu", img_size=[imgsz, imgsz])
        loss_fn = build_loss(size, 80, 0.0, False)
        model.train()
        opt = build_optimizer(
            model, lr=2.5e-4, backbone_lr=6e-5, betas=(0.9, 0.999), weight_decay=1.25e-4, base_lr=2.5e-4
        )
        x = torch.rand(batch, 3, imgsz, imgsz)
        targets = [
            {
                "labels": torch.tensor([1, 2]),
                "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]]),
            }
            for _ in range(batch)
        ]

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            losses = loss_fn(model(x, targets=targets), targets)
            total = sum(losses.values()) if isinstance(losses, dict) else losses
            total.backward()
            opt.step()

        _steps[key] = step
    t = time.perf_counter()
    _steps[key]()
    return {"ms": (time.perf_counter() - t) * 1000}


def evaluate(path: str) -> dict:
    """Their Validator (conf 0.5, IoU 0.5, with its mAP) on the benchmark's predictions and ground truth."""
    with open(path) as f:
        data = json.load(f)
    label_to_name = dict(enumerate(data["class_names"]))
    t = time.perf_counter()
    gt, preds = [], []
    for im in data["images"]:
        gt.append(
            {
                "boxes": torch.tensor(im["gt_boxes"], dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(im["gt_labels"], dtype=torch.int64),
            }
        )
        boxes = torch.tensor(im["boxes"], dtype=torch.float32).reshape(-1, 4)
        scores = torch.tensor(im["scores"], dtype=torch.float32)
        labels = torch.tensor(im["labels"], dtype=torch.int64)
        keep = scores >= CONF
        # as their trainer hands predictions over: kept at the threshold for P/R/F1, all_* for the mAP
        preds.append(
            {
                "boxes": boxes[keep],
                "scores": scores[keep],
                "labels": labels[keep],
                "all_boxes": boxes,
                "all_scores": scores,
                "all_labels": labels,
            }
        )
    m = Validator(gt, preds, label_to_name, conf_thresh=CONF, iou_thresh=0.5).compute_metrics()
    ms = (time.perf_counter() - t) * 1000
    return {"ms": ms, "map50": m.get("mAP_50"), "f1": m.get("f1")}


def main() -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 2))
    for line in sys.stdin:
        task = json.loads(line)
        name = task["task"]
        try:
            if name == "quit":
                break
            if name == "hello":
                ans = {"peer": "dfine-seg", "version": dfine_seg.__version__, "torch": torch.__version__}
            elif name == "train_step":
                ans = train_step(task["size"], task["batch"], task["imgsz"])
            elif name == "eval":
                ans = evaluate(task["data"])
            else:
                ans = {"error": f"unknown task {name!r}"}
        except Exception as e:  # one failing task is reported, the worker keeps serving
            ans = {"error": f"{name}: {type(e).__name__}: {e}"}
        print(json.dumps(ans), flush=True)


if __name__ == "__main__":
    main()
