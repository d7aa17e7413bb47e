"""Production-threshold matching: which predictions are true positives at one (confidence, IoU) setting.

Rules (exact, tested):
- predictions with score >= conf are visited by descending score (ties: original order);
- a prediction matches the unmatched ground truth of the SAME class with the highest IoU, if that IoU >= iou
  (a match at exactly the threshold counts): a true positive;
- otherwise, if an unmatched ground truth of ANOTHER class overlaps it with IoU >= iou, that is a class mismatch:
  one false positive (predicted class) and one false negative (true class); that ground truth is consumed so
  it is not counted again;
- otherwise the prediction is a false positive (background);
- ground truth left unmatched is a false negative. A second prediction on an already matched object is a FP.
Because each decision depends only on higher-scored predictions, one pass at conf=0 gives the outcome at every
threshold: the matching at conf t is the prefix of predictions with score >= t (used by the threshold sweep).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TP, FP_BACKGROUND, FP_MISMATCH = 0, 1, 2


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (N x M), float64."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class ImageMatch:
    """Outcome of every prediction of one image (in descending-score order) and its ground truth."""

    scores: np.ndarray  # (P,) sorted descending
    pred_labels: np.ndarray  # (P,)
    outcome: np.ndarray  # (P,) TP / FP_BACKGROUND / FP_MISMATCH
    matched_gt: np.ndarray  # (P,) index of the GT it consumed, -1 if none
    iou: np.ndarray  # (P,) IoU with the consumed GT (0 if none)
    gt_labels: np.ndarray  # (G,)


def match_image(
    pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, iou_thr: float, conf: float = 0.0
) -> ImageMatch:
    """Greedy one-to-one matching of one image's predictions (score >= conf) to its ground truth."""
    scores = np.asarray(pred_scores, np.float64).reshape(-1)
    keep = scores >= conf
    order = np.argsort(-scores[keep], kind="stable")
    pb = np.asarray(pred_boxes, np.float64).reshape(-1, 4)[keep][order]
    pl = np.asarray(pred_labels, np.int64).reshape(-1)[keep][order]
    ps = scores[keep][order]
    gl = np.asarray(gt_labels, np.int64).reshape(-1)
    ious = iou_matrix(pb, gt_boxes)
    outcome = np.full(len(ps), FP_BACKGROUND, np.int8)
    matched = np.full(len(ps), -1, np.int64)
    best_iou = np.zeros(len(ps))
    # Only (prediction, GT) pairs over the IoU threshold can match. Listing them once, each prediction's sorted by
    # IoU (descending, then GT index: the first of equals wins, as argmax would), leaves a short walk per
    # prediction in plain Python instead of four numpy calls per prediction: about 10x faster on 100 predictions.
    rows, cols = np.nonzero(ious >= iou_thr)
    if len(rows):
        order = np.lexsort((cols, -ious[rows, cols], rows))
        rows, cols = rows[order], cols[order]
        bounds = np.searchsorted(rows, np.arange(len(ps) + 1)).tolist()
        cand, gt_cls, pred_cls = cols.tolist(), gl.tolist(), pl.tolist()
        taken = [False] * len(gt_cls)
        for i in np.unique(rows).tolist():
            free = -1
            for j in cand[bounds[i] : bounds[i + 1]]:
                if taken[j]:
                    continue
                if gt_cls[j] == pred_cls[i]:
                    outcome[i], free = TP, j
                    break
                if free < 0:
                    free = j  # the best-overlapping GT of another class, if no same-class GT is free
            else:
                if free < 0:
                    continue
                outcome[i] = FP_MISMATCH
            taken[free] = True
            matched[i], best_iou[i] = free, ious[i, free]
    return ImageMatch(ps, pl, outcome, matched, best_iou, gl)
