"""Metric computation for 5,000 images x 100 detections: detcli's evaluator vs pycocotools, same data, same run.

Target (issue 6): >= 3x faster than pycocotools. Run: `python benchmarks/eval_speed.py [--images 5000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
from _common import save

from engine.metrics import DetectionEvaluator
from engine.metrics.coco_map import to_coco


def synthetic(n_images: int, dets: int, classes: int = 10, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        n_gt = int(rng.integers(1, 20))
        xy = rng.uniform(0, 600, (n_gt, 2))
        wh = rng.uniform(10, 120, (n_gt, 2))
        gt = np.concatenate([xy, xy + wh], 1)
        pick = rng.integers(0, n_gt, dets)
        pred = gt[pick] + rng.normal(0, 8, (dets, 4))
        pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
        images.append(
            {
                "id": i + 1,
                "width": 720,
                "height": 720,
                "gt_boxes": gt,
                "gt_labels": rng.integers(0, classes, n_gt),
                "pred_boxes": pred,
                "pred_scores": rng.uniform(0, 1, dets),
                "pred_labels": rng.integers(0, classes, dets),
            }
        )
    return images


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dets", type=int, default=100)
    args = ap.parse_args()
    images = synthetic(args.images, args.dets)
    names = [str(c) for c in range(10)]

    t = time.perf_counter()
    ev = DetectionEvaluator(names, conf=0.5, iou=0.5, max_det=100)
    for im in images:
        ev.add(
            im["id"],
            im["pred_boxes"],
            im["pred_scores"],
            im["pred_labels"],
            im["gt_boxes"],
            im["gt_labels"],
            image_size=(720, 720),
        )
    res = ev.compute()
    ours_s = time.perf_counter() - t

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = to_coco(images, 10)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev2 = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev2.evaluate()
        ev2.accumulate()
        ev2.summarize()
    ref_s = time.perf_counter() - t
    out = {
        "images": args.images,
        "dets_per_image": args.dets,
        "detcli_s": ours_s,
        "detcli_includes": "COCO mAP + threshold metrics + confusion + exact sweep",
        "pycocotools_s": ref_s,
        "speedup": ref_s / ours_s,
        "map50_95_detcli": res.map50_95,
        "map50_95_pycocotools": float(ev2.stats[0]),
    }
    print(
        f"detcli {ours_s:.2f}s (mAP + P/R/F1 + sweep) vs pycocotools {ref_s:.2f}s (mAP only): "
        f"{out['speedup']:.2f}x; mAP50-95 {res.map50_95:.6f} vs {ev2.stats[0]:.6f}"
    )
    save("eval_speed", out)
    return out


if __name__ == "__main__":
    main()
