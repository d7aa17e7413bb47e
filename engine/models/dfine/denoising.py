"""Contrastive denoising queries for training (DN-DETR / DINO style, as D-FINE uses them).

Each ground-truth box is copied into groups of a positive query (small box noise, to be reconstructed) and a
negative one (large noise, to be rejected); labels are randomly flipped. An attention mask keeps groups from
seeing each other and the matching queries from seeing any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.models.dfine.box_ops import cxcywh_to_xyxy, xyxy_to_cxcywh


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    x = x.clip(min=0.0, max=1.0)
    return torch.log(x.clip(min=eps) / (1 - x).clip(min=eps))


@dataclass
class DenoisingGroup:
    logits: Tensor | None  # (B, N_dn, C) class embeddings of the noised labels
    boxes_unact: Tensor | None  # (B, N_dn, 4) inverse-sigmoid of the noised boxes
    attn_mask: Tensor | None  # (N_dn + Q, N_dn + Q), True = blocked
    meta: dict


def build_denoising_group(
    targets: list[dict[str, Tensor]],
    num_classes: int,
    num_queries: int,
    class_embed: nn.Embedding,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,
) -> DenoisingGroup:
    """Build the noised queries and the attention mask for one batch (see the module docstring)."""
    num_gts = [len(t["labels"]) for t in targets]
    device = targets[0]["labels"].device
    max_gt = max(num_gts)
    if max_gt == 0:
        return DenoisingGroup(
            None, None, None, {"dn_positive_idx": None, "dn_num_group": 0, "dn_num_split": [0, num_queries]}
        )
    groups = max(1, num_denoising // max_gt)
    bs = len(targets)
    labels = torch.full([bs, max_gt], num_classes, dtype=torch.int32, device=device)
    boxes = torch.zeros([bs, max_gt, 4], device=device)
    pad_mask = torch.zeros([bs, max_gt], dtype=torch.bool, device=device)
    for i, n in enumerate(num_gts):
        if n:
            labels[i, :n] = targets[i]["labels"]
            boxes[i, :n] = targets[i]["boxes"]
            pad_mask[i, :n] = True
    labels = labels.tile([1, 2 * groups])
    boxes = boxes.tile([1, 2 * groups, 1])
    pad_mask = pad_mask.tile([1, 2 * groups])
    negative = torch.zeros([bs, max_gt * 2, 1], device=device)
    negative[:, max_gt:] = 1
    negative = negative.tile([1, groups, 1])
    positive = (1 - negative).squeeze(-1) * pad_mask
    positive_idx = torch.nonzero(positive)[:, 1]
    positive_idx = torch.split(positive_idx, [n * groups for n in num_gts])
    total = int(max_gt * 2 * groups)

    if label_noise_ratio > 0:
        flip = torch.rand_like(labels, dtype=torch.float) < (label_noise_ratio * 0.5)
        new_labels = torch.randint_like(flip, 0, num_classes, dtype=labels.dtype)
        labels = torch.where(flip & pad_mask, new_labels, labels)
    if box_noise_scale > 0:
        xyxy = cxcywh_to_xyxy(boxes)
        diff = torch.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(boxes)
        # negatives move by 1-2x half the size, positives by 0-1x
        part = (part + 1.0) * negative + part * (1 - negative)
        xyxy = torch.clip(xyxy + sign * part * diff, min=0.0, max=1.0)
        boxes = xyxy_to_cxcywh(xyxy)
        boxes[boxes < 0] *= -1
    boxes_unact = inverse_sigmoid(boxes)
    logits = class_embed(labels)

    size = total + num_queries
    mask = torch.full([size, size], False, dtype=torch.bool, device=device)
    mask[total:, :total] = True  # matching queries never see the denoising ones
    span = max_gt * 2
    for g in range(groups):
        rows = slice(span * g, span * (g + 1))
        mask[rows, span * (g + 1) : total] = True  # later groups
        mask[rows, : span * g] = True  # earlier groups
    meta = {"dn_positive_idx": positive_idx, "dn_num_group": groups, "dn_num_split": [total, num_queries]}
    return DenoisingGroup(logits, boxes_unact, mask, meta)
