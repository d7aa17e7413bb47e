"""COCO mAP through faster-coco-eval (a C++ COCOeval that reproduces pycocotools' numbers)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster


def coco_map(gt: dict, detections: list[dict], max_det: int = 100) -> dict:
    """mAP figures and per-category AP for a COCO ground-truth dict and a list of COCO result dicts.

    Returns map50_95, map50, map75, map_small/medium/large and per_category {category_id: AP50-95, AP50}.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            coco_dt = COCO({"images": gt["images"], "annotations": [], "categories": gt["categories"]})
        ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
        ev.params.maxDets = [1, 10, max_det]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [float(x) for x in ev.stats]
    out = {
        "map50_95": max(s[0], 0.0),
        "map50": max(s[1], 0.0),
        "map75": max(s[2], 0.0),
        "map_small": s[3],
        "map_medium": s[4],
        "map_large": s[5],
        "per_category": {},
    }
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        p50 = precision[0, :, k, 0, -1]
        out["per_category"][cat] = {
            "ap50_95": float(valid.mean()) if valid.size else float("nan"),
            "ap50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan"),
            # the interpolated precision at the 101 COCO recall points, IoU 0.5: the class's PR curve
            "pr50": [float(x) for x in p50] if (p50 > -1).any() else [],
        }
    return out


def to_coco(images: list[dict], num_classes: int) -> tuple[dict, list[dict]]:
    """Build a COCO gt dict and result list from per-image arrays (xyxy pixels, contiguous labels).

    images: dicts with id, width, height, gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels.
    """
    gt = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c, "name": str(c)} for c in range(num_classes)],
    }
    dets: list[dict] = []
    ann_id = 1
    for im in images:
        gt["images"].append({"id": im["id"], "width": im["width"], "height": im["height"]})
        for (x1, y1, x2, y2), c in zip(
            np.asarray(im["gt_boxes"]).reshape(-1, 4), np.asarray(im["gt_labels"]), strict=True
        ):
            w, h = float(x2 - x1), float(y2 - y1)
            gt["annotations"].append(
                {
                    "id": ann_id,
                    "image_id": im["id"],
                    "category_id": int(c),
                    "bbox": [float(x1), float(y1), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        for (x1, y1, x2, y2), s, c in zip(
            np.asarray(im["pred_boxes"]).reshape(-1, 4),
            np.asarray(im["pred_scores"]).reshape(-1),
            np.asarray(im["pred_labels"]).reshape(-1),
            strict=True,
        ):
            dets.append(
                {
                    "image_id": im["id"],
                    "category_id": int(c),
                    "score": float(s),
                    "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                }
            )
    return gt, dets
