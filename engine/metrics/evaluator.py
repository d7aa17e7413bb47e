"""One evaluator for training, `detcli eval` and `detcli bench --accuracy`: COCO mAP + threshold metrics.

Add predictions and ground truth image by image (xyxy pixels of the original image, contiguous labels), then
`compute()` returns an `EvalResult` with mAP, P/R/F1/IoU at the production threshold, the confusion matrix,
the exact confidence sweep with its F1-best threshold, and per-image error counts for the error gallery.
"""

from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from engine.metrics.coco_map import coco_map, to_coco
from engine.metrics.matching import FP_MISMATCH, TP, ImageMatch, match_image


def drop_in_ignore(boxes: np.ndarray, ignore: np.ndarray, min_inside: float = 0.5) -> np.ndarray:
    """Mask of boxes to keep: False for those at least `min_inside` of whose area lies in an ignore region
    (the official VisDrone toolkit rule, applied to detections and ground truth alike)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ignore = np.asarray(ignore, np.float64).reshape(-1, 4)
    if not len(boxes) or not len(ignore):
        return np.ones(len(boxes), bool)
    lt = np.maximum(boxes[:, None, :2], ignore[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], ignore[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = np.clip((boxes[:, 2:] - boxes[:, :2]), 0, None).prod(-1)
    frac = inter.max(1) / np.maximum(area, 1e-12)
    return frac < min_inside


@dataclass
class EvalResult:
    """Every number an evaluation produces; `to_dict()` is what the run history and `--json` store."""

    map50_95: float
    map50: float
    map75: float
    map_small: float
    map_medium: float
    map_large: float
    precision: float
    recall: float
    f1: float
    iou: float
    tp: int
    fp: int
    fn: int
    conf: float
    iou_threshold: float
    best_conf: float
    best_f1: float
    per_class: list[dict]
    confusion: list[list[int]]  # (C+1) x (C+1): rows true class, cols predicted class, last = background
    class_names: list[str]
    sweep: dict = field(default_factory=dict)  # conf, precision, recall, f1 arrays (as lists)
    per_image: list[dict] = field(default_factory=list)  # image_id, fp, fn
    skipped: list[str] = field(default_factory=list)  # images that could not be read, so were not scored
    # what was scored, filled in by engine.evaluate (None when scoring COCO files or inside training)
    run: str | None = None
    model: str | None = None
    backend: str | None = None
    split: str | None = None
    data_root: str | None = None
    out_dir: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def scalars(self) -> dict[str, float]:
        return {
            k: v for k, v in asdict(self).items() if isinstance(v, int | float) and not isinstance(v, bool)
        }


_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.UAdd,
    ast.Constant,
    ast.Name,
    ast.Load,
)


def best_metric(result: EvalResult | dict, formula: str = "(map50 + f1) / 2") -> float:
    """Evaluate the configured selection formula over the result's scalar metrics (no arbitrary code)."""
    values = (
        result.scalars()
        if isinstance(result, EvalResult)
        else {k: v for k, v in result.items() if isinstance(v, int | float)}
    )
    tree = ast.parse(formula, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(
                f"best-metric formula '{formula}': only + - * / numbers and metric names allowed"
            )
        if isinstance(node, ast.Name) and node.id not in values:
            raise ValueError(
                f"best-metric formula '{formula}': unknown metric '{node.id}'; "
                f"known: {', '.join(sorted(values))}"
            )
    return float(eval(compile(tree, "<best_metric>", "eval"), {"__builtins__": {}}, dict(values)))


class DetectionEvaluator:
    """Accumulates images; see the module docstring."""

    def __init__(self, class_names: list[str], conf: float = 0.5, iou: float = 0.5, max_det: int = 100):
        self.class_names, self.conf, self.iou, self.max_det = list(class_names), conf, iou, max_det
        self.images: list[dict] = []

    def add(
        self,
        image_id,
        pred_boxes,
        pred_scores,
        pred_labels,
        gt_boxes,
        gt_labels,
        ignore_boxes=None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        """Add one image. Boxes xyxy pixels; image_size (h, w) is used for COCO areas only if given."""
        pb, ps, pl = (np.asarray(_np(x)) for x in (pred_boxes, pred_scores, pred_labels))
        gb, gl = np.asarray(_np(gt_boxes)).reshape(-1, 4), np.asarray(_np(gt_labels)).reshape(-1)
        pb, ps, pl = pb.reshape(-1, 4), ps.reshape(-1), pl.reshape(-1)
        if ignore_boxes is not None and len(ignore_boxes):
            ig = np.asarray(_np(ignore_boxes)).reshape(-1, 4)
            kp, kg = drop_in_ignore(pb, ig), drop_in_ignore(gb, ig)
            pb, ps, pl, gb, gl = pb[kp], ps[kp], pl[kp], gb[kg], gl[kg]
        order = np.argsort(-ps, kind="stable")[: self.max_det]
        h, w = image_size or (0, 0)
        self.images.append(
            {
                "id": len(self.images) + 1,
                "image_id": image_id,
                "width": int(w),
                "height": int(h),
                "pred_boxes": pb[order],
                "pred_scores": ps[order],
                "pred_labels": pl[order],
                "gt_boxes": gb,
                "gt_labels": gl,
            }
        )

    def compute(self, coco: tuple[dict, list[dict]] | None = None) -> EvalResult:
        """All metrics over the images added so far.

        `coco` = (ground-truth dict, results list) scores mAP on original COCO files as they are (their areas and
        crowd flags), category ids already remapped to 0..C-1; otherwise they are built from the added images.
        """
        nc = len(self.class_names)
        gt, dets = coco if coco is not None else to_coco(self.images, nc)
        m = (
            coco_map(gt, dets, self.max_det)
            if self.images
            else {k: 0.0 for k in ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large")}
            | {"per_category": {}}
        )
        matches = [
            match_image(
                im["pred_boxes"],
                im["pred_scores"],
                im["pred_labels"],
                im["gt_boxes"],
                im["gt_labels"],
                self.iou,
            )
            for im in self.images
        ]
        n_gt = sum(len(im["gt_labels"]) for im in self.images)
        sweep = _sweep(matches, n_gt)
        tp, fp, fn, ious, confusion, per_class_counts, per_image = self._at_conf(matches)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        per_class = []
        for c, name in enumerate(self.class_names):
            ctp, cfp, cfn, cious = per_class_counts[c]
            cp = ctp / (ctp + cfp) if ctp + cfp else 0.0
            cr = ctp / (ctp + cfn) if ctp + cfn else 0.0
            ap = m["per_category"].get(c, {})
            per_class.append(
                {
                    "class": name,
                    "id": c,
                    "ap50_95": _clean(ap.get("ap50_95")),
                    "ap50": _clean(ap.get("ap50")),
                    "precision": cp,
                    "recall": cr,
                    "f1": _f1(cp, cr),
                    "iou": float(np.mean(cious)) if cious else 0.0,
                    "tp": ctp,
                    "fp": cfp,
                    "fn": cfn,
                    "gt": ctp + cfn,
                    "pr50": ap.get("pr50", []),
                }
            )
        return EvalResult(
            map50_95=m["map50_95"],
            map50=m["map50"],
            map75=m["map75"],
            map_small=m["map_small"],
            map_medium=m["map_medium"],
            map_large=m["map_large"],
            precision=p,
            recall=r,
            f1=_f1(p, r),
            iou=float(np.mean(ious)) if ious else 0.0,
            tp=tp,
            fp=fp,
            fn=fn,
            conf=self.conf,
            iou_threshold=self.iou,
            best_conf=sweep["best_conf"],
            best_f1=sweep["best_f1"],
            per_class=per_class,
            confusion=confusion.tolist(),
            class_names=self.class_names,
            sweep={k: sweep[k] for k in ("conf", "precision", "recall", "f1")},
            per_image=per_image,
        )

    def _at_conf(self, matches: list[ImageMatch]):
        nc = len(self.class_names)
        confusion = np.zeros((nc + 1, nc + 1), np.int64)
        counts = [[0, 0, 0, []] for _ in range(nc)]
        tp = fp = fn = 0
        ious: list[float] = []
        per_image = []
        for im, mt in zip(self.images, matches, strict=True):
            sel = mt.scores >= self.conf
            out, lab, gt_idx = mt.outcome[sel], mt.pred_labels[sel], mt.matched_gt[sel]
            consumed = np.zeros(len(mt.gt_labels), bool)
            img_fp = 0
            for o, pc, g, v in zip(out, lab, gt_idx, mt.iou[sel], strict=True):
                if o == TP:
                    tp += 1
                    counts[pc][0] += 1
                    counts[pc][3].append(v)
                    ious.append(v)
                    confusion[pc, pc] += 1
                    consumed[g] = True
                elif o == FP_MISMATCH:
                    fp += 1
                    img_fp += 1
                    counts[pc][1] += 1
                    confusion[mt.gt_labels[g], pc] += 1
                    consumed[g] = True  # counted as FN below through "not a TP"
                    counts[mt.gt_labels[g]][2] += 1
                    fn += 1
                else:
                    fp += 1
                    img_fp += 1
                    counts[pc][1] += 1
                    confusion[nc, pc] += 1
            missed = np.where(~consumed)[0]
            for g in missed:
                fn += 1
                counts[mt.gt_labels[g]][2] += 1
                confusion[mt.gt_labels[g], nc] += 1
            img_fn = len(missed) + int((out == FP_MISMATCH).sum())
            per_image.append({"image_id": im["image_id"], "fp": img_fp, "fn": img_fn})
        return tp, fp, fn, ious, confusion, counts, per_image


def _sweep(matches: list[ImageMatch], n_gt: int) -> dict:
    """P, R, F1 at every distinct score (exact), and the threshold with the best F1 (highest on ties)."""
    if not matches or not sum(len(m.scores) for m in matches):
        return {"conf": [], "precision": [], "recall": [], "f1": [], "best_conf": 0.0, "best_f1": 0.0}
    scores = np.concatenate([m.scores for m in matches])
    is_tp = np.concatenate([m.outcome == TP for m in matches])
    order = np.argsort(-scores, kind="stable")
    scores, is_tp = scores[order], is_tp[order]
    ctp, cfp = np.cumsum(is_tp), np.cumsum(~is_tp)
    # the outcome at threshold t includes every prediction with score >= t: take the last index of each score
    last = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tp, fp = ctp[last], cfp[last]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(n_gt, 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1))
    return {
        "conf": scores[last].tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "best_conf": float(scores[last][best]),
        "best_f1": float(f1[best]),
    }


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x
