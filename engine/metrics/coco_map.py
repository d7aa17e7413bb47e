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
        coco_dt = _results(gt, detections)
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


def _results(gt: dict, detections: list[dict]) -> COCO:
    """The detections as a COCO object, built directly: `loadRes` also writes a polygon per box (for segm
    evaluation) and re-copies every result, a third of the whole evaluation time at 500k detections."""
    known = {im["id"] for im in gt["images"]}
    unknown = {d["image_id"] for d in detections} - known
    if unknown:
        raise ValueError(f"detections name image ids not in the ground truth: {sorted(unknown)[:5]}")
    anns = [
        d | {"id": i, "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0}
        for i, d in enumerate(detections, start=1)
    ]
    res = COCO()
    res.dataset = {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": anns}
    res.createIndex()
    return res


def to_coco(images: list[dict], num_classes: int) -> tuple[dict, list[dict]]:
    """Build a COCO gt dict and result list from per-image arrays (xyxy pixels, contiguous labels).

    images: dicts with id, width, height, gt_boxes, gt_labels, pred_boxes, pred_scores, pred_labels.
    """
    gt: dict = {
        "images": [{"id": im["id"], "width": im["width"], "height": im["height"]} for im in images],
        "annotations": [],
        "categories": [{"id": c, "name": str(c)} for c in range(num_classes)],
    }
    dets: list[dict] = []
    for im in images:
        image_id = im["id"]
        # xywh rows as Python floats in one conversion per image (not one numpy scalar at a time)
        g = np.array(im["gt_boxes"], np.float64).reshape(-1, 4)  # a copy: made xywh in place
        g[:, 2:] -= g[:, :2]
        first = len(gt["annotations"]) + 1
        gt["annotations"] += [
            {
                "id": first + k,
                "image_id": image_id,
                "category_id": c,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            for k, (box, c) in enumerate(
                zip(g.tolist(), np.asarray(im["gt_labels"], np.int64).reshape(-1).tolist(), strict=True)
            )
        ]
        d = np.array(im["pred_boxes"], np.float64).reshape(-1, 4)
        d[:, 2:] -= d[:, :2]
        dets += [
            {"image_id": image_id, "category_id": c, "score": s, "bbox": box}
            for box, s, c in zip(
                d.tolist(),
                np.asarray(im["pred_scores"], np.float64).reshape(-1).tolist(),
                np.asarray(im["pred_labels"], np.int64).reshape(-1).tolist(),  # ids as ints, whatever came in
                strict=True,
            )
        ]
    return gt, dets
