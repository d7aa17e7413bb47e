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
    taken = np.zeros(len(gl), bool)
    outcome = np.full(len(ps), FP_BACKGROUND, np.int8)
    matched = np.full(len(ps), -1, np.int64)
    best_iou = np.zeros(len(ps))
    for i in range(len(ps)):
        if not len(gl):
            break
        cand = np.where(~taken & (ious[i] >= iou_thr), ious[i], -1.0)
        same = np.where(gl == pl[i], cand, -1.0)
        j = int(np.argmax(same))
        if same[j] >= 0:
            outcome[i] = TP
        else:
            j = int(np.argmax(cand))
            if cand[j] < 0:
                continue
            outcome[i] = FP_MISMATCH
        taken[j] = True
        matched[i], best_iou[i] = j, ious[i, j]
    return ImageMatch(ps, pl, outcome, matched, best_iou, gl)
