"""Reading COCO ground-truth and results files (any category ids) for scoring existing predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.metrics.evaluator import DetectionEvaluator, EvalResult


class CocoFileError(ValueError):
    """A COCO file that cannot be scored; the message names the file and the problem."""


def _load(path: Path, what: str):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CocoFileError(f"{what} file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise CocoFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def score_coco_files(
    gt_path: str | Path, pred_path: str | Path, conf: float = 0.5, iou: float = 0.5, max_det: int = 100
) -> EvalResult:
    """Score a COCO results file against COCO ground truth: mAP exactly as pycocotools, plus P/R/F1/IoU."""
    gt = _load(Path(gt_path), "ground-truth")
    preds = _load(Path(pred_path), "predictions")
    if not isinstance(gt, dict) or not {"images", "annotations", "categories"} <= gt.keys():
        raise CocoFileError(
            f"{gt_path}: a COCO ground-truth file needs 'images', 'annotations' and 'categories'"
        )
    if isinstance(preds, dict) and "annotations" in preds:
        preds = preds["annotations"]
    if not isinstance(preds, list):
        raise CocoFileError(
            f"{pred_path}: expected a COCO results list [{{image_id, category_id, bbox, score}}]"
        )
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    to_idx = {c["id"]: i for i, c in enumerate(cats)}
    names = [str(c.get("name", c["id"])) for c in cats]
    image_ids = {im["id"] for im in gt["images"]}
    for n, p in enumerate(preds):
        missing = {"image_id", "category_id", "bbox", "score"} - p.keys()
        if missing:
            raise CocoFileError(f"{pred_path}: detection #{n} lacks {sorted(missing)}")
        if p["category_id"] not in to_idx:
            raise CocoFileError(
                f"{pred_path}: detection #{n} has category_id {p['category_id']}, "
                f"not among the ground truth's {sorted(to_idx)}"
            )
        if p["image_id"] not in image_ids:
            raise CocoFileError(
                f"{pred_path}: detection #{n} names image_id {p['image_id']}, not in {gt_path}"
            )
    remapped_gt = {
        **gt,
        "categories": [{**c, "id": to_idx[c["id"]]} for c in cats],
        "annotations": [{**a, "category_id": to_idx[a["category_id"]]} for a in gt["annotations"]],
    }
    remapped_preds = [{**p, "category_id": to_idx[p["category_id"]]} for p in preds]

    ev = DetectionEvaluator(names, conf=conf, iou=iou, max_det=max_det)
    by_image: dict = {im["id"]: ([], [], [], [], [], []) for im in gt["images"]}
    for a in remapped_gt["annotations"]:
        if a.get("iscrowd", 0):
            continue
        x, y, w, h = a["bbox"]
        by_image[a["image_id"]][0].append([x, y, x + w, y + h])
        by_image[a["image_id"]][1].append(a["category_id"])
    for p in remapped_preds:
        x, y, w, h = p["bbox"]
        by_image[p["image_id"]][2].append([x, y, x + w, y + h])
        by_image[p["image_id"]][3].append(p["score"])
        by_image[p["image_id"]][4].append(p["category_id"])
    for im in gt["images"]:
        gb, gl, pb, ps, pl, _ = by_image[im["id"]]
        ev.add(
            im.get("file_name", im["id"]),
            np.asarray(pb, np.float64).reshape(-1, 4),
            np.asarray(ps),
            np.asarray(pl, np.int64),
            np.asarray(gb, np.float64).reshape(-1, 4),
            np.asarray(gl, np.int64),
            image_size=(im.get("height", 0), im.get("width", 0)),
        )
    return ev.compute(coco=(remapped_gt, remapped_preds))
