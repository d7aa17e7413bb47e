"""The D-FINE decoder: query selection from the encoder, then layers that refine box edge distributions (FDR).

Parameter names follow the official `DFINETransformer` so official checkpoints load unchanged.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.dfine.deformable_attention import MSDeformableAttention
from engine.models.dfine.denoising import build_denoising_group, inverse_sigmoid
from engine.models.dfine.fdr import Integral, distance2bbox, weighting_function


def prior_bias(prob: float = 0.01) -> float:
    """Logit bias that makes an untrained classifier output probability `prob`."""
    return float(-math.log((1 - prob) / prob))


class MLP(nn.Module):
    def __init__(self, din: int, dhidden: int, dout: int, num_layers: int):
        super().__init__()
        dims = [din] + [dhidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, [*dims[1:], dout], strict=True))
        self.act = nn.ReLU(inplace=True)  # on a linear's fresh output, whose backward does not read it

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


class Gate(nn.Module):
    """Gated fusion of the self-attention stream and the cross-attention result."""

    def __init__(self, d_model: int):
        super().__init__()
        self.gate = nn.Linear(2 * d_model, 2 * d_model)
        nn.init.constant_(self.gate.bias, prior_bias(0.5))
        nn.init.constant_(self.gate.weight, 0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        g1, g2 = torch.sigmoid(self.gate(torch.cat([x1, x2], dim=-1))).chunk(2, dim=-1)
        return self.norm(g1 * x1 + g2 * x2)


class TransformerDecoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_head: int,
        dim_feedforward: int,
        dropout: float,
        n_levels: int,
        n_points: list[int],
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_head, dropout=dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MSDeformableAttention(d_model, n_head, n_levels, n_points)
        self.dropout2 = nn.Dropout(dropout)
        self.gateway = Gate(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = nn.ReLU(inplace=True)  # as in MLP: linear1's output is read by nothing else
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)
        nn.init.xavier_uniform_(self.linear1.weight)
        nn.init.xavier_uniform_(self.linear2.weight)

    def forward(
        self,
        target: Tensor,
        ref_boxes: Tensor,
        values: list[Tensor],
        spatial_shapes: list,
        attn_mask: Tensor | None,
        pos: Tensor,
    ) -> Tensor:
        q = k = target + pos
        attn, _ = self.self_attn(q, k, value=target, attn_mask=attn_mask)
        target = self.norm1(target + self.dropout1(attn))
        cross = self.cross_attn(target + pos, ref_boxes, values, spatial_shapes)
        target = self.gateway(target, self.dropout2(cross))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(target))))
        # the clamp keeps fp16 inference finite
        return self.norm3((target + self.dropout4(ffn)).clamp(min=-65504, max=65504))


class LQE(nn.Module):
    """Location quality estimator: sharper edge distributions raise the class score."""

    def __init__(self, k: int, hidden_dim: int, num_layers: int, reg_max: int):
        super().__init__()
        self.k, self.reg_max = k, reg_max
        self.reg_conf = MLP(4 * (k + 1), hidden_dim, 1, num_layers)
        nn.init.constant_(self.reg_conf.layers[-1].bias, 0)
        nn.init.constant_(self.reg_conf.layers[-1].weight, 0)

    def forward(self, scores: Tensor, pred_corners: Tensor) -> Tensor:
        b, n, _ = pred_corners.shape
        prob = F.softmax(pred_corners.reshape(b, n, 4, self.reg_max + 1), dim=-1)
        topk, _ = prob.topk(self.k, dim=-1)
        stat = torch.cat([topk, topk.mean(dim=-1, keepdim=True)], dim=-1)
        return scores + self.reg_conf(stat.reshape(b, n, -1))


class TransformerDecoder(nn.Module):
    """The stack of decoder layers; each refines the edge distributions of the previous one (residually)."""

    def __init__(
        self,
        layer: TransformerDecoderLayer,
        num_layers: int,
        num_head: int,
        reg_max: int,
        eval_idx: int,
        up: nn.Parameter,
        reg_scale: nn.Parameter,
    ):
        super().__init__()
        self.num_layers, self.num_head, self.reg_max = num_layers, num_head, reg_max
        # shared with the parent module (the official state dict lists them under both names)
        self.up, self.reg_scale = up, reg_scale
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.lqe_layers = nn.ModuleList(LQE(4, 64, 2, reg_max) for _ in range(num_layers))

    def split_values(self, memory: Tensor, spatial_shapes: list) -> list[Tensor]:
        """Memory (B, sum HW, C) as per-level (B, heads, head_dim, HW) maps for deformable attention."""
        value = memory.reshape(memory.shape[0], memory.shape[1], self.num_head, -1)
        value = value.permute(0, 2, 3, 1)
        # slices rather than split(): with traced sizes the exported graph keeps free H, W
        out, start = [], 0
        for h, w in spatial_shapes:
            out.append(value[..., start : start + h * w])
            start = start + h * w
        return out

    def convert_to_deploy(self) -> None:
        """Drop the layers after eval_idx and freeze the weighting function into a constant."""
        self.project = weighting_function(self.reg_max, self.up, self.reg_scale, deploy=True)
        self.layers = self.layers[: self.eval_idx + 1]
        self.lqe_layers = nn.ModuleList([nn.Identity()] * self.eval_idx + [self.lqe_layers[self.eval_idx]])

    def forward(
        self,
        target: Tensor,
        ref_unact: Tensor,
        memory: Tensor,
        spatial_shapes: list,
        bbox_head: nn.ModuleList,
        score_head: nn.ModuleList,
        query_pos_head: nn.Module,
        pre_bbox_head: nn.Module,
        integral: Integral,
        up: Tensor,
        reg_scale: Tensor,
        attn_mask: Tensor | None = None,
    ):
        values = self.split_values(memory, spatial_shapes)
        project = (
            self.project if hasattr(self, "project") else weighting_function(self.reg_max, up, reg_scale)
        )
        output = target
        output_detach: Tensor | float = 0
        corners_undetach: Tensor | float = 0
        ref_detach = torch.sigmoid(ref_unact)
        boxes, logits, corners, refs = [], [], [], []
        for i, layer in enumerate(self.layers):
            pos = query_pos_head(ref_detach).clamp(min=-10, max=10)
            output = layer(output, ref_detach.unsqueeze(2), values, spatial_shapes, attn_mask, pos)
            if i == 0:
                # the first layer predicts coarse boxes; every later box is an FDR refinement of these
                pre_boxes = torch.sigmoid(pre_bbox_head(output) + inverse_sigmoid(ref_detach))
                pre_scores = score_head[0](output)
                ref_initial = pre_boxes.detach()
            pred_corners = bbox_head[i](output + output_detach) + corners_undetach
            inter_boxes = distance2bbox(ref_initial, integral(pred_corners, project), reg_scale)
            if self.training or i == self.eval_idx:
                scores = self.lqe_layers[i](score_head[i](output), pred_corners)
                logits.append(scores)
                boxes.append(inter_boxes)
                corners.append(pred_corners)
                refs.append(ref_initial)
                if not self.training:
                    break
            corners_undetach = pred_corners
            ref_detach = inter_boxes.detach()
            output_detach = output.detach()
        return (
            torch.stack(boxes),
            torch.stack(logits),
            torch.stack(corners),
            torch.stack(refs),
            pre_boxes,
            pre_scores,
        )


class DFINETransformer(nn.Module):
    """Query selection + FDR decoder + heads. Train mode returns everything the criterion needs."""

    def __init__(
        self,
        num_classes: int = 80,
        hidden_dim: int = 256,
        num_queries: int = 300,
        feat_channels: list[int] = (256, 256, 256),
        feat_strides: list[int] = (8, 16, 32),
        num_levels: int = 3,
        num_points: list[int] = (3, 6, 3),
        nhead: int = 8,
        num_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        num_denoising: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        eval_spatial_size: tuple[int, int] | None = (640, 640),
        eval_idx: int = -1,
        eps: float = 1e-2,
        reg_max: int = 32,
        reg_scale: float = 4.0,
    ):
        super().__init__()
        feat_strides = list(feat_strides)
        feat_channels = list(feat_channels)
        while len(feat_strides) < num_levels:
            feat_strides.append(feat_strides[-1] * 2)
        self.hidden_dim, self.nhead, self.feat_strides = hidden_dim, nhead, feat_strides
        self.num_levels, self.num_classes, self.num_queries = num_levels, num_classes, num_queries
        self.eps, self.num_layers, self.reg_max = eps, num_layers, reg_max
        self.eval_spatial_size = tuple(eval_spatial_size) if eval_spatial_size else None
        self._build_input_proj(feat_channels)
        # up/reg_scale shape the weighting function; stored as (frozen) parameters like the official model
        self.up = nn.Parameter(torch.tensor([0.5]), requires_grad=False)
        self.reg_scale = nn.Parameter(torch.tensor([reg_scale]), requires_grad=False)
        layer = TransformerDecoderLayer(
            hidden_dim, nhead, dim_feedforward, dropout, num_levels, list(num_points)
        )
        self.decoder = TransformerDecoder(
            layer, num_layers, nhead, reg_max, eval_idx, self.up, self.reg_scale
        )
        self.num_denoising, self.label_noise_ratio, self.box_noise_scale = (
            num_denoising,
            label_noise_ratio,
            box_noise_scale,
        )
        if num_denoising > 0:
            self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
            nn.init.normal_(self.denoising_class_embed.weight[:-1])
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, 2)
        self.enc_output = nn.Sequential(
            OrderedDict([("proj", nn.Linear(hidden_dim, hidden_dim)), ("norm", nn.LayerNorm(hidden_dim))])
        )
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.eval_idx = self.decoder.eval_idx
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_layers))
        self.pre_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_bbox_head = nn.ModuleList(
            MLP(hidden_dim, hidden_dim, 4 * (reg_max + 1), 3) for _ in range(num_layers)
        )
        self.integral = Integral(reg_max)
        if self.eval_spatial_size:
            anchors, valid_mask = self._generate_anchors()
            self.register_buffer("anchors", anchors)
            self.register_buffer("valid_mask", valid_mask)
        self._reset_parameters(feat_channels)

    def _build_input_proj(self, feat_channels: list[int]) -> None:
        self.input_proj = nn.ModuleList()
        for c in feat_channels:
            self.input_proj.append(
                nn.Identity()
                if c == self.hidden_dim
                else nn.Sequential(
                    OrderedDict(
                        [
                            ("conv", nn.Conv2d(c, self.hidden_dim, 1, bias=False)),
                            ("norm", nn.BatchNorm2d(self.hidden_dim)),
                        ]
                    )
                )
            )
        c = feat_channels[-1]
        for _ in range(self.num_levels - len(feat_channels)):
            self.input_proj.append(
                nn.Identity()
                if c == self.hidden_dim
                else nn.Sequential(
                    OrderedDict(
                        [
                            ("conv", nn.Conv2d(c, self.hidden_dim, 3, 2, padding=1, bias=False)),
                            ("norm", nn.BatchNorm2d(self.hidden_dim)),
                        ]
                    )
                )
            )
            c = self.hidden_dim

    def _reset_parameters(self, feat_channels: list[int]) -> None:
        bias = prior_bias(0.01)
        nn.init.constant_(self.enc_score_head.bias, bias)
        for head in (self.enc_bbox_head, self.pre_bbox_head):
            nn.init.constant_(head.layers[-1].weight, 0)
            nn.init.constant_(head.layers[-1].bias, 0)
        for cls_head, reg_head in zip(self.dec_score_head, self.dec_bbox_head, strict=True):
            nn.init.constant_(cls_head.bias, bias)
            nn.init.constant_(reg_head.layers[-1].weight, 0)
            nn.init.constant_(reg_head.layers[-1].bias, 0)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        nn.init.xavier_uniform_(self.query_pos_head.layers[0].weight)
        nn.init.xavier_uniform_(self.query_pos_head.layers[1].weight)
        for proj, c in zip(self.input_proj, feat_channels, strict=False):
            if c != self.hidden_dim:
                nn.init.xavier_uniform_(proj[0].weight)

    def _generate_anchors(
        self, spatial_shapes: list | None = None, grid_size: float = 0.05, device: torch.device | str = "cpu"
    ) -> tuple[Tensor, Tensor]:
        """Unactivated (logit) anchor boxes per feature-map cell; cells too near the border are invalid."""
        if spatial_shapes is None:
            h, w = self.eval_spatial_size
            spatial_shapes = [[int(h / s), int(w / s)] for s in self.feat_strides]
        anchors = []
        for lvl, (h, w) in enumerate(spatial_shapes):
            gy, gx = torch.meshgrid(
                torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
            )
            xy = torch.stack([(gx + 0.5) / w, (gy + 0.5) / h], dim=-1).unsqueeze(0)
            wh = torch.ones_like(xy) * grid_size * (2.0**lvl)
            anchors.append(torch.cat([xy, wh], dim=-1).reshape(1, -1, 4))
        anchors = torch.cat(anchors, dim=1).to(device)
        valid = ((anchors > self.eps) * (anchors < 1 - self.eps)).all(-1, keepdim=True)
        anchors = torch.log(anchors / (1 - anchors))
        return torch.where(valid, anchors, torch.inf), valid

    def _flatten_levels(self, feats: list[Tensor]) -> tuple[Tensor, list[list[int]]]:
        proj = [self.input_proj[i](f) for i, f in enumerate(feats)]
        for i in range(len(proj), self.num_levels):
            proj.append(self.input_proj[i](feats[-1] if i == len(feats) else proj[-1]))
        shapes = [[p.shape[2], p.shape[3]] for p in proj]
        return torch.cat([p.flatten(2).permute(0, 2, 1) for p in proj], 1), shapes

    def _anchors_for(self, spatial_shapes: list, device: torch.device) -> tuple[Tensor, Tensor]:
        exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
        if self.eval_spatial_size and not self.training and not exporting:
            h, w = self.eval_spatial_size
            if spatial_shapes == [[int(h / s), int(w / s)] for s in self.feat_strides]:
                return self.anchors, self.valid_mask
        return self._generate_anchors(spatial_shapes, device=device)

    def _select_queries(self, memory: Tensor, spatial_shapes: list):
        anchors, valid = self._anchors_for(spatial_shapes, memory.device)
        if memory.shape[0] > 1:
            anchors = anchors.repeat(memory.shape[0], 1, 1)
        memory = valid.to(memory.dtype) * memory
        out_memory = self.enc_output(memory)
        enc_logits = self.enc_score_head(out_memory)
        _, topk = torch.topk(enc_logits.max(-1).values, self.num_queries, dim=-1)
        top_memory = out_memory.gather(1, topk.unsqueeze(-1).repeat(1, 1, out_memory.shape[-1]))
        top_anchors = anchors.gather(1, topk.unsqueeze(-1).repeat(1, 1, anchors.shape[-1]))
        top_boxes_unact = self.enc_bbox_head(top_memory) + top_anchors
        enc_boxes, enc_logits_top = [], []
        if self.training:
            enc_boxes.append(torch.sigmoid(top_boxes_unact))
            enc_logits_top.append(enc_logits.gather(1, topk.unsqueeze(-1).repeat(1, 1, enc_logits.shape[-1])))
        return top_memory.detach(), top_boxes_unact.detach(), enc_boxes, enc_logits_top

    def forward(self, feats: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> dict:
        memory, shapes = self._flatten_levels(feats)
        dn = None
        if self.training and self.num_denoising > 0:
            if targets is None:
                raise ValueError("training with denoising needs targets: model(images, targets=targets)")
            dn = build_denoising_group(
                targets,
                self.num_classes,
                self.num_queries,
                self.denoising_class_embed,
                self.num_denoising,
                self.label_noise_ratio,
                self.box_noise_scale,
            )
        content, ref_unact, enc_boxes, enc_logits = self._select_queries(memory, shapes)
        attn_mask, dn_meta = None, None
        if dn is not None:
            dn_meta = dn.meta
            if dn.boxes_unact is not None:
                ref_unact = torch.cat([dn.boxes_unact, ref_unact], dim=1)
                content = torch.cat([dn.logits, content], dim=1)
                attn_mask = dn.attn_mask
            else:
                # a batch without objects: touch the embedding (adds 0) so DDP sees every parameter used
                content = content + self.denoising_class_embed.weight[:0].sum()
        out_boxes, out_logits, out_corners, out_refs, pre_boxes, pre_logits = self.decoder(
            content,
            ref_unact,
            memory,
            shapes,
            self.dec_bbox_head,
            self.dec_score_head,
            self.query_pos_head,
            self.pre_bbox_head,
            self.integral,
            self.up,
            self.reg_scale,
            attn_mask=attn_mask,
        )
        if not self.training:
            return {"pred_logits": out_logits[-1], "pred_boxes": out_boxes[-1]}

        if dn_meta is not None:
            split = dn_meta["dn_num_split"]
            dn_pre_logits, pre_logits = torch.split(pre_logits, split, dim=1)
            dn_pre_boxes, pre_boxes = torch.split(pre_boxes, split, dim=1)
            dn_boxes, out_boxes = torch.split(out_boxes, split, dim=2)
            dn_logits, out_logits = torch.split(out_logits, split, dim=2)
            dn_corners, out_corners = torch.split(out_corners, split, dim=2)
            dn_refs, out_refs = torch.split(out_refs, split, dim=2)
        out = {
            "pred_logits": out_logits[-1],
            "pred_boxes": out_boxes[-1],
            "pred_corners": out_corners[-1],
            "ref_points": out_refs[-1],
            "up": self.up,
            "reg_scale": self.reg_scale,
            "aux_outputs": _layer_outputs(
                out_logits[:-1],
                out_boxes[:-1],
                out_corners[:-1],
                out_refs[:-1],
                out_corners[-1],
                out_logits[-1],
            ),
            "enc_aux_outputs": [
                {"pred_logits": lg, "pred_boxes": bx} for lg, bx in zip(enc_logits, enc_boxes, strict=True)
            ],
            "pre_outputs": {"pred_logits": pre_logits, "pred_boxes": pre_boxes},
            "enc_meta": {"class_agnostic": False},
        }
        if dn_meta is not None:
            out["dn_outputs"] = _layer_outputs(
                dn_logits, dn_boxes, dn_corners, dn_refs, dn_corners[-1], dn_logits[-1]
            )
            out["dn_pre_outputs"] = {"pred_logits": dn_pre_logits, "pred_boxes": dn_pre_boxes}
            out["dn_meta"] = dn_meta
        return out


def _layer_outputs(logits, boxes, corners, refs, teacher_corners, teacher_logits) -> list[dict]:
    """Per-layer dicts for the auxiliary losses; the last layer is every earlier layer's GO-LSD teacher."""
    return [
        {
            "pred_logits": a,
            "pred_boxes": b,
            "pred_corners": c,
            "ref_points": d,
            "teacher_corners": teacher_corners,
            "teacher_logits": teacher_logits,
        }
        for a, b, c, d in zip(logits, boxes, corners, refs, strict=True)
    ]
