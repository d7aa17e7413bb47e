"""Hungarian matching of predictions to ground truth (focal class cost + L1 + GIoU), as D-FINE trains with."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from engine.models.dfine.box_ops import cxcywh_to_xyxy, generalized_box_iou

Indices = list[tuple[Tensor, Tensor]]


class HungarianMatcher(nn.Module):
    """One-to-one assignment minimising cost_class * focal + cost_bbox * L1 + cost_giou * (-GIoU)."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        super().__init__()
        if not (cost_class or cost_bbox or cost_giou):
            raise ValueError("at least one matching cost must be non-zero")
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor], targets: list[dict[str, Tensor]]) -> Indices:
        """Per image, (prediction indices, target indices) of the optimal assignment."""
        bs, nq = outputs["pred_logits"].shape[:2]
        prob = torch.sigmoid(outputs["pred_logits"].flatten(0, 1))
        boxes = outputs["pred_boxes"].flatten(0, 1)
        tgt_ids = torch.cat([t["labels"] for t in targets])
        tgt_boxes = torch.cat([t["boxes"] for t in targets])
        sizes = [len(t["boxes"]) for t in targets]
        if sum(sizes) == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return [(empty, empty) for _ in targets]
        p = prob[:, tgt_ids]
        neg = (1 - self.alpha) * (p**self.gamma) * (-(1 - p + 1e-8).log())
        pos = self.alpha * ((1 - p) ** self.gamma) * (-(p + 1e-8).log())
        cost = (
            self.cost_bbox * torch.cdist(boxes, tgt_boxes, p=1)
            + self.cost_class * (pos - neg)
            - self.cost_giou * generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(tgt_boxes))
        )
        cost = torch.nan_to_num(cost.view(bs, nq, -1).cpu(), nan=1.0)
        out = []
        for i, c in enumerate(cost.split(sizes, -1)):
            rows, cols = linear_sum_assignment(c[i])
            out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return out
