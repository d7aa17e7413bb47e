"""Optimizer parameter groups, tested (unlike the official YAML regexes, see anchors-dfine.md §C):
backbone at its own LR, no weight decay on norms, biases and other 1-D parameters."""

from __future__ import annotations

import torch
from torch import nn

from engine.config import TrainConfig


def param_groups(model: nn.Module, lr: float, backbone_lr: float | None, weight_decay: float) -> list[dict]:
    """Four named groups: backbone / backbone_no_wd / head / head_no_wd (empty groups are dropped)."""
    groups: dict[str, dict] = {
        "backbone": {"params": [], "lr": backbone_lr or lr, "weight_decay": weight_decay},
        "backbone_no_wd": {"params": [], "lr": backbone_lr or lr, "weight_decay": 0.0},
        "head": {"params": [], "lr": lr, "weight_decay": weight_decay},
        "head_no_wd": {"params": [], "lr": lr, "weight_decay": 0.0},
    }
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if name.split(".")[0] in ("backbone",) or ".backbone." in name else "head"
        # 1-D tensors are norm weights, biases and the learnable affine scalars: decaying them hurts
        no_wd = p.ndim <= 1 or name.endswith(".bias")
        groups[part + ("_no_wd" if no_wd else "")]["params"].append(p)
    return [{"name": k, **v} for k, v in groups.items() if v["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.lr, cfg.backbone_lr, cfg.weight_decay)
    for g in groups:
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
