"""Multi-scale deformable attention in pure torch (grid_sample), so it runs anywhere and exports to ONNX."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sample_levels(
    values: list[Tensor],
    spatial_shapes: list[tuple[int, int]],
    locations: Tensor,
    weights: Tensor,
    points_per_level: list[int],
) -> Tensor:
    """Bilinearly sample each level's value map at the given locations and sum with attention weights.

    values: per level (B, heads, head_dim, H*W); locations: (B, Q, heads, sum(points), 2) in [0, 1];
    weights: (B, Q, heads, sum(points)). Returns (B, Q, heads * head_dim).
    """
    bs, heads, head_dim, _ = values[0].shape
    q = locations.shape[1]
    grids = (2 * locations - 1).permute(0, 2, 1, 3, 4).flatten(0, 1)  # (B*heads, Q, P, 2)
    per_level = grids.split(points_per_level, dim=-2)
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        value = values[level].reshape(bs * heads, head_dim, h, w)
        sampled.append(
            F.grid_sample(value, per_level[level], mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    attn = weights.permute(0, 2, 1, 3).reshape(bs * heads, 1, q, sum(points_per_level))
    out = (torch.cat(sampled, dim=-1) * attn).sum(-1).reshape(bs, heads * head_dim, q)
    return out.permute(0, 2, 1)


class MSDeformableAttention(nn.Module):
    """Each query attends to a few learnt sampling points around its reference box, on every level."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_levels: int,
        num_points: list[int] | int,
        offset_scale: float = 0.5,
    ):
        super().__init__()
        points = list(num_points) if isinstance(num_points, list | tuple) else [num_points] * num_levels
        if len(points) != num_levels:
            raise ValueError(f"num_points {points} must list one count per level ({num_levels})")
        self.embed_dim, self.num_heads, self.num_levels = embed_dim, num_heads, num_levels
        self.num_points_list, self.offset_scale = points, offset_scale
        self.register_buffer(
            "num_points_scale", torch.tensor([1 / n for n in points for _ in range(n)], dtype=torch.float32)
        )
        total = num_heads * sum(points)
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # initial offsets fan out in num_heads directions, farther for later points
        nn.init.constant_(self.sampling_offsets.weight, 0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values
        grid = grid.reshape(self.num_heads, 1, 2).tile([1, sum(self.num_points_list), 1])
        scaling = torch.cat([torch.arange(1, n + 1) for n in self.num_points_list]).reshape(1, -1, 1)
        self.sampling_offsets.bias.data[...] = (grid * scaling).flatten()
        nn.init.constant_(self.attention_weights.weight, 0)
        nn.init.constant_(self.attention_weights.bias, 0)

    def forward(
        self,
        query: Tensor,
        reference_boxes: Tensor,
        values: list[Tensor],
        spatial_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """query (B, Q, C); reference_boxes (B, Q, 1, 4) cxcywh in [0, 1]; values per level from the decoder."""
        bs, nq = query.shape[:2]
        npts = sum(self.num_points_list)
        offsets = self.sampling_offsets(query).reshape(bs, nq, self.num_heads, npts, 2)
        weights = F.softmax(self.attention_weights(query).reshape(bs, nq, self.num_heads, npts), dim=-1)
        scale = self.num_points_scale.to(dtype=query.dtype).unsqueeze(-1)
        offset = offsets * scale * reference_boxes[:, :, None, :, 2:] * self.offset_scale
        locations = reference_boxes[:, :, None, :, :2] + offset
        return sample_levels(values, spatial_shapes, locations, weights, self.num_points_list)
