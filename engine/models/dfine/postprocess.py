"""Turn raw D-FINE outputs into detections: top-k over queries x classes, boxes in pixels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.models.dfine.box_ops import cxcywh_to_xyxy


class DFINEPostProcessor(nn.Module):
    """Sigmoid scores, the best `num_top_queries` (query, class) pairs, boxes scaled to `sizes` (w, h) pixels.

    `forward(outputs, sizes)` with `sizes` (B, 2) as (w, h) returns (labels, boxes, scores) tensors; a letterboxed
    input is mapped to the original image afterwards with `engine.geometry.boxes_to_original`.
    """

    def __init__(self, num_classes: int, num_top_queries: int = 300):
        super().__init__()
        self.num_classes, self.num_top_queries = int(num_classes), int(num_top_queries)

    def forward(self, outputs: dict[str, Tensor], sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        boxes = cxcywh_to_xyxy(boxes) * sizes.repeat(1, 2).unsqueeze(1).to(boxes.dtype)
        k = min(self.num_top_queries, logits.shape[1] * logits.shape[2])
        scores, index = torch.topk(torch.sigmoid(logits).flatten(1), k, dim=-1)
        # `a - a // b * b` instead of `%`: older TensorRT parsers lack Mod
        labels = index - index // self.num_classes * self.num_classes
        query = index // self.num_classes
        boxes = boxes.gather(dim=1, index=query.unsqueeze(-1).repeat(1, 1, boxes.shape[-1]))
        return labels, boxes, scores

    def to_dicts(self, outputs: dict[str, Tensor], sizes: Tensor) -> list[dict[str, Tensor]]:
        """Per-image dicts with labels, boxes (xyxy pixels) and scores."""
        labels, boxes, scores = self(outputs, sizes)
        return [
            {"labels": lab, "boxes": box, "scores": sco}
            for lab, box, sco in zip(labels, boxes, scores, strict=True)
        ]
