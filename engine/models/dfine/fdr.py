"""Fine-grained Distribution Refinement (FDR): how D-FINE turns bin logits into box edges and back.

Each box edge is predicted as a distribution over `reg_max + 1` bins. The bins are not uniform: the weighting
function W(n) places them densely near zero offset (fine corrections) and sparsely towards +-2*up*reg_scale
(coarse ones). The predicted offset of an edge is the expectation sum_n softmax(logits)_n * W(n), measured in
units of the reference box size / reg_scale, starting from half the box (so offset 0 reproduces the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.dfine.box_ops import xyxy_to_cxcywh


def weighting_function(reg_max: int, up: Tensor, reg_scale: Tensor, deploy: bool = False) -> Tensor:
    """The reg_max + 1 bin positions W(n): geometric steps either side of 0, +-2*up*reg_scale at the ends.

    With deploy=True the values are computed eagerly into a constant tensor (no graph through `up`), which is
    what an exported model needs.
    """
    bound = abs(up[0]) * abs(reg_scale)
    step = (bound + 1) ** (2 / (reg_max - 2))
    half = reg_max // 2
    left = [-(step**i) + 1 for i in range(half - 1, 0, -1)]
    right = [step**i - 1 for i in range(1, half)]
    if deploy:
        values = [
            -(bound * 2).item(),
            *[v.item() for v in left],
            0.0,
            *[v.item() for v in right],
            (bound * 2).item(),
        ]
        return torch.tensor(values, dtype=up.dtype, device=up.device)
    zero = torch.zeros_like(up[0][None])
    return torch.cat([-(bound * 2), *left, zero, *right, bound * 2], 0)


class Integral(nn.Module):
    """Expected offset of each edge: softmax over the bins, dotted with the weighting function."""

    def __init__(self, reg_max: int = 32):
        super().__init__()
        self.reg_max = reg_max

    def forward(self, logits: Tensor, project: Tensor) -> Tensor:
        shape = logits.shape
        probs = F.softmax(logits.reshape(-1, self.reg_max + 1), dim=1)
        offsets = F.linear(probs, project.to(probs.device)).reshape(-1, 4)
        return offsets.reshape([*shape[:-1], -1])


def distance2bbox(points: Tensor, distance: Tensor, reg_scale: Tensor) -> Tensor:
    """Decode edge offsets around reference boxes (cx, cy, w, h) into boxes (cx, cy, w, h)."""
    reg_scale = abs(reg_scale)
    half = 0.5 * reg_scale
    x1 = points[..., 0] - (half + distance[..., 0]) * (points[..., 2] / reg_scale)
    y1 = points[..., 1] - (half + distance[..., 1]) * (points[..., 3] / reg_scale)
    x2 = points[..., 0] + (half + distance[..., 2]) * (points[..., 2] / reg_scale)
    y2 = points[..., 1] + (half + distance[..., 3]) * (points[..., 3] / reg_scale)
    return xyxy_to_cxcywh(torch.stack([x1, y1, x2, y2], -1))


def distribution_targets(
    offsets: Tensor, reg_max: int, reg_scale: Tensor, up: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Soft two-bin targets for continuous offsets: the left bin index and the weights of right/left bins.

    An offset between bins n and n+1 is split between them by linear interpolation; offsets outside the range
    go fully to the first bin (below) or to the last (above, index reg_max - 0.1 so that +1 stays in range).
    """
    offsets = offsets.reshape(-1)
    bins = weighting_function(reg_max, up, reg_scale)
    left_idx = ((bins.unsqueeze(0) - offsets.unsqueeze(1)) <= 0).sum(dim=1) - 1
    index = left_idx.to(offsets.dtype)
    w_right = torch.zeros_like(index)
    w_left = torch.zeros_like(index)
    inside = (index >= 0) & (index < reg_max)
    i = index[inside].long()
    d_left = torch.abs(offsets[inside] - bins[i])
    d_right = torch.abs(bins[i + 1] - offsets[inside])
    w_right[inside] = d_left / (d_left + d_right)
    w_left[inside] = 1.0 - w_right[inside]
    below = index < 0
    w_right[below], w_left[below], index[below] = 0.0, 1.0, 0.0
    above = index >= reg_max
    w_right[above], w_left[above], index[above] = 1.0, 0.0, reg_max - 0.1
    return index, w_right, w_left


def bbox2distance(
    points: Tensor, boxes_xyxy: Tensor, reg_max: int, reg_scale: Tensor, up: Tensor, eps: float = 0.1
) -> tuple[Tensor, Tensor, Tensor]:
    """Encode target boxes (xyxy) around reference boxes (cx, cy, w, h) as FDR bin targets (detached)."""
    reg_scale = abs(reg_scale)
    unit_w = points[..., 2] / reg_scale + 1e-16
    unit_h = points[..., 3] / reg_scale + 1e-16
    half = 0.5 * reg_scale
    left = (points[:, 0] - boxes_xyxy[:, 0]) / unit_w - half
    top = (points[:, 1] - boxes_xyxy[:, 1]) / unit_h - half
    right = (boxes_xyxy[:, 2] - points[:, 0]) / unit_w - half
    bottom = (boxes_xyxy[:, 3] - points[:, 1]) / unit_h - half
    index, w_right, w_left = distribution_targets(
        torch.stack([left, top, right, bottom], -1), reg_max, reg_scale, up
    )
    index = index.clamp(min=0, max=reg_max - eps)
    return index.reshape(-1).detach(), w_right.detach(), w_left.detach()
