"""The D-FINE training criterion: VFL + L1 + GIoU, plus FGL and DDF for the distribution refinement.

Terms are computed on the final layer, each auxiliary decoder layer (`_aux_i`), the first layer's coarse boxes
(`_pre`), the encoder's query proposals (`_enc_0`) and the denoising queries (`_dn_i`, `_dn_pre`); names, weights
and maths follow the official implementation so loss values are comparable with it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.dfine.box_ops import cxcywh_to_xyxy, paired_giou, paired_iou
from engine.models.dfine.fdr import bbox2distance
from engine.models.dfine.matcher import HungarianMatcher, Indices

DEFAULT_WEIGHTS = {"loss_vfl": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_fgl": 0.15, "loss_ddf": 1.5}


def _world_mean(value: float, device: torch.device) -> float:
    """Average a count over distributed ranks (at least 1) so every rank normalises losses alike."""
    t = torch.as_tensor([value], dtype=torch.float, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        t = t / dist.get_world_size()
    return torch.clamp(t, min=1).item()


def _src_idx(indices: Indices) -> tuple[Tensor, Tensor]:
    batch = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    return batch, torch.cat([src for src, _ in indices])


def _gather_targets(targets: list[dict[str, Tensor]], indices: Indices, key: str) -> Tensor:
    return torch.cat([t[key][j] for t, (_, j) in zip(targets, indices, strict=True)], dim=0)


class DFINECriterion(nn.Module):
    """`criterion(outputs, targets, **metas) -> {name: weighted loss}` (sum the values for the total)."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | None = None,
        weight_dict: dict[str, float] | None = None,
        alpha: float = 0.75,
        gamma: float = 2.0,
        reg_max: int = 32,
    ):
        super().__init__()
        self.num_classes, self.alpha, self.gamma, self.reg_max = num_classes, alpha, gamma, reg_max
        self.matcher = matcher or HungarianMatcher()
        self.weight_dict = dict(DEFAULT_WEIGHTS if weight_dict is None else weight_dict)

    # ------------------------------------------------------------------ individual terms

    def loss_vfl(self, out: dict, targets: list, indices: Indices, num_boxes: float) -> dict[str, Tensor]:
        """Varifocal loss: matched queries are pushed towards their IoU, the rest towards 0 (focal-weighted)."""
        idx = _src_idx(indices)
        tgt_boxes = _gather_targets(targets, indices, "boxes")
        ious = paired_iou(cxcywh_to_xyxy(out["pred_boxes"][idx]), cxcywh_to_xyxy(tgt_boxes)).detach()
        logits = out["pred_logits"]
        classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        classes[idx] = _gather_targets(targets, indices, "labels")
        onehot = F.one_hot(classes, num_classes=self.num_classes + 1)[..., :-1]
        score = torch.zeros_like(classes, dtype=logits.dtype)
        score[idx] = ious.to(score.dtype)
        target_score = score.unsqueeze(-1) * onehot
        weight = self.alpha * torch.sigmoid(logits).detach().pow(self.gamma) * (1 - onehot) + target_score
        loss = F.binary_cross_entropy_with_logits(logits, target_score, weight=weight, reduction="none")
        return {"loss_vfl": loss.mean(1).sum() * logits.shape[1] / num_boxes}

    def loss_boxes(self, out: dict, targets: list, indices: Indices, num_boxes: float) -> dict[str, Tensor]:
        idx = _src_idx(indices)
        src = out["pred_boxes"][idx]
        tgt = _gather_targets(targets, indices, "boxes")
        giou = paired_giou(cxcywh_to_xyxy(src), cxcywh_to_xyxy(tgt))
        return {
            "loss_bbox": F.l1_loss(src, tgt, reduction="none").sum() / num_boxes,
            "loss_giou": (1 - giou).sum() / num_boxes,
        }

    def loss_local(
        self, out: dict, targets: list, indices: Indices, num_boxes: float, cache: dict, T: float = 5.0
    ) -> dict[str, Tensor]:
        """FGL (edge distributions vs soft two-bin targets) and DDF (KL to the last layer, GO-LSD)."""
        if "pred_corners" not in out:
            return {}
        losses = {}
        idx = _src_idx(indices)
        tgt_boxes = _gather_targets(targets, indices, "boxes")
        corners = out["pred_corners"][idx].reshape(-1, self.reg_max + 1)
        key = "dn" if out.get("is_dn") else "main"
        if key not in cache:
            # every layer refines the same initial reference boxes, so the bin targets are computed once
            with torch.no_grad():
                cache[key] = bbox2distance(
                    out["ref_points"][idx].detach(),
                    cxcywh_to_xyxy(tgt_boxes),
                    self.reg_max,
                    out["reg_scale"],
                    out["up"],
                )
        tgt_corners, w_right, w_left = cache[key]
        ious = paired_iou(cxcywh_to_xyxy(out["pred_boxes"][idx]), cxcywh_to_xyxy(tgt_boxes))
        weight = ious.unsqueeze(-1).repeat(1, 1, 4).reshape(-1).detach()
        losses["loss_fgl"] = self._two_bin_ce(corners, tgt_corners, w_right, w_left, weight, num_boxes)

        if "teacher_corners" in out:
            pred_all = out["pred_corners"].reshape(-1, self.reg_max + 1)
            teacher = out["teacher_corners"].reshape(-1, self.reg_max + 1)
            if torch.equal(pred_all, teacher):
                losses["loss_ddf"] = pred_all.sum() * 0
            else:
                w_local = torch.sigmoid(out["teacher_logits"]).max(dim=-1)[0]
                mask = torch.zeros_like(w_local, dtype=torch.bool)
                mask[idx] = True
                mask = mask.unsqueeze(-1).repeat(1, 1, 4).reshape(-1)
                w_local[idx] = ious.reshape_as(w_local[idx]).to(w_local.dtype)
                w_local = w_local.unsqueeze(-1).repeat(1, 1, 4).reshape(-1).detach()
                kl = F.kl_div(
                    F.log_softmax(pred_all / T, dim=1),
                    F.softmax(teacher.detach() / T, dim=1),
                    reduction="none",
                ).sum(-1)
                loss = w_local * (T**2) * kl
                if not out.get("is_dn"):
                    # balance matched vs unmatched queries; scaled to a per-GPU batch of 8 like the official
                    scale = 8 / out["pred_boxes"].shape[0]
                    cache["num_pos"] = (mask.sum() * scale) ** 0.5
                    cache["num_neg"] = ((~mask).sum() * scale) ** 0.5
                pos = loss[mask].mean() if mask.any() else 0
                neg = loss[~mask].mean() if (~mask).any() else 0
                n_pos, n_neg = cache["num_pos"], cache["num_neg"]
                losses["loss_ddf"] = (pos * n_pos + neg * n_neg) / (n_pos + n_neg)
        return losses

    @staticmethod
    def _two_bin_ce(
        pred: Tensor, left: Tensor, w_right: Tensor, w_left: Tensor, weight: Tensor, avg: float
    ) -> Tensor:
        idx_left = left.long()
        loss = F.cross_entropy(pred, idx_left, reduction="none") * w_left.reshape(-1) + F.cross_entropy(
            pred, idx_left + 1, reduction="none"
        ) * w_right.reshape(-1)
        return (loss * weight.float()).sum() / avg

    # ------------------------------------------------------------------ orchestration

    def _terms(
        self,
        out: dict,
        targets: list,
        cls_indices: Indices,
        box_indices: Indices,
        num_boxes: float,
        num_boxes_go: float,
        cache: dict,
        suffix: str,
        with_local: bool = True,
    ) -> dict[str, Tensor]:
        terms = {}
        terms.update(self.loss_vfl(out, targets, cls_indices, num_boxes))
        terms.update(self.loss_boxes(out, targets, box_indices, num_boxes_go))
        if with_local:
            terms.update(self.loss_local(out, targets, box_indices, num_boxes_go, cache))
        return {k + suffix: v * self.weight_dict[k] for k, v in terms.items() if k in self.weight_dict}

    @staticmethod
    def _union_indices(indices: Indices, others: list[Indices]) -> Indices:
        """GO-LSD: the union of all layers' matches, each query keeping the target it was matched to most."""
        merged = indices
        for aux in others:
            merged = [
                (torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(merged, aux, strict=True)
            ]
        result = []
        for rows, cols in merged:
            pairs = torch.stack([rows, cols], 1)
            unique, counts = torch.unique(pairs, return_counts=True, dim=0)
            chosen: dict[int, int] = {}
            for r, c in unique[torch.argsort(counts, descending=True)].tolist():
                chosen.setdefault(r, c)
            result.append(
                (
                    torch.tensor(list(chosen.keys()), dtype=torch.long, device=rows.device),
                    torch.tensor(list(chosen.values()), dtype=torch.long, device=rows.device),
                )
            )
        return result

    @staticmethod
    def _denoising_indices(dn_meta: dict, targets: list) -> Indices:
        groups = dn_meta["dn_num_group"]
        out = []
        for i, t in enumerate(targets):
            n = len(t["labels"])
            device = t["labels"].device
            if n:
                out.append(
                    (
                        dn_meta["dn_positive_idx"][i],
                        torch.arange(n, dtype=torch.int64, device=device).tile(groups),
                    )
                )
            else:
                empty = torch.zeros(0, dtype=torch.int64, device=device)
                out.append((empty, empty))
        return out

    def forward(
        self,
        outputs: dict,
        targets: list[dict[str, Tensor]],
        epoch: int = 0,
        step: int = 0,
        global_step: int = 0,
        epoch_step: int = 1,
    ) -> dict[str, Tensor]:
        """Weighted loss terms. The metas are accepted for API stability: D-FINE's loss does not use them."""
        device = outputs["pred_logits"].device
        main = {k: v for k, v in outputs.items() if "aux" not in k}
        indices = self.matcher(main, targets)
        aux_list = outputs.get("aux_outputs", [])
        layer_indices = [self.matcher(a, targets) for a in [*aux_list, outputs["pre_outputs"]]]
        enc_indices = [self.matcher(a, targets) for a in outputs.get("enc_aux_outputs", [])]
        go = self._union_indices(indices, layer_indices + enc_indices)
        num_go = _world_mean(sum(len(r) for r, _ in go), device)
        num_boxes = _world_mean(sum(len(t["labels"]) for t in targets), device)
        cache: dict = {}

        losses = self._terms(outputs, targets, indices, go, num_boxes, num_go, cache, "")
        for i, aux in enumerate(aux_list):
            aux = {**aux, "up": outputs["up"], "reg_scale": outputs["reg_scale"]}
            losses.update(
                self._terms(aux, targets, layer_indices[i], go, num_boxes, num_go, cache, f"_aux_{i}")
            )
        losses.update(
            self._terms(
                outputs["pre_outputs"], targets, layer_indices[-1], go, num_boxes, num_go, cache, "_pre"
            )
        )
        for i, enc in enumerate(outputs.get("enc_aux_outputs", [])):
            losses.update(
                self._terms(
                    enc, targets, enc_indices[i], go, num_boxes, num_go, cache, f"_enc_{i}", with_local=False
                )
            )
        if "dn_outputs" in outputs:
            dn_idx = self._denoising_indices(outputs["dn_meta"], targets)
            dn_boxes = num_boxes * outputs["dn_meta"]["dn_num_group"]
            dn_boxes = dn_boxes if dn_boxes > 0 else 1
            for i, aux in enumerate(outputs["dn_outputs"]):
                aux = {**aux, "is_dn": True, "up": outputs["up"], "reg_scale": outputs["reg_scale"]}
                losses.update(
                    self._terms(aux, targets, dn_idx, dn_idx, dn_boxes, dn_boxes, cache, f"_dn_{i}")
                )
            losses.update(
                self._terms(
                    outputs["dn_pre_outputs"], targets, dn_idx, dn_idx, dn_boxes, dn_boxes, cache, "_dn_pre"
                )
            )
        return {k: torch.nan_to_num(v, nan=0.0) for k, v in losses.items()}


def build_criterion(name: str = "dfine-n", num_classes: int = 80, **over: float) -> DFINECriterion:
    """The official D-FINE criterion for a size name (`dfine-n` ... `dfine-x`; all sizes share it).

    Overrides: any weight_dict key (e.g. `loss_giou=3.0`), `alpha`, `gamma`.
    """
    if not name.startswith("dfine-") or name[len("dfine-") :] not in "nsmlx" or len(name) != 7:
        raise ValueError(f"unknown model '{name}'; expected dfine-n, dfine-s, dfine-m, dfine-l or dfine-x")
    weights = dict(DEFAULT_WEIGHTS)
    for k in list(over):
        if k in weights:
            weights[k] = float(over.pop(k))
    alpha, gamma = over.pop("alpha", 0.75), over.pop("gamma", 2.0)
    if over:
        raise ValueError(f"unknown criterion override(s): {sorted(over)}")
    return DFINECriterion(num_classes, HungarianMatcher(), weights, alpha=alpha, gamma=gamma)
