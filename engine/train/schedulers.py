"""Learning-rate schedules as a multiplier of each group's initial LR, per optimizer step, with linear warm-up.

One function of the step keeps resume exact (no scheduler state to drift) and keeps every group's ratio (the
backbone LR stays a fixed fraction of the head LR through the whole run).
"""

from __future__ import annotations

import math

from engine.config import TrainConfig


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the initial LR at optimizer step `step` (0-based) of `total_steps`."""
    total_steps = max(total_steps, 1)
    if cfg.warmup_steps and step < cfg.warmup_steps:
        warm = (step + 1) / cfg.warmup_steps
    else:
        warm = 1.0
    t = min(step / total_steps, 1.0)
    floor = cfg.min_lr_ratio
    kind = cfg.scheduler
    if kind == "constant":
        f = 1.0
    elif kind == "cosine":
        f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    elif kind == "flat-cosine":
        # DEIM/D-FINE style: full LR for the first `flat_epochs` share of training, then cosine to the floor
        flat = cfg.flat_epochs
        f = (
            1.0
            if t <= flat
            else floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (t - flat) / max(1 - flat, 1e-9)))
        )
    elif kind == "one-cycle":
        peak = 0.1
        if t < peak:
            f = floor + (1 - floor) * t / peak
        else:
            f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (t - peak) / (1 - peak)))
        warm = 1.0  # one-cycle has its own ramp
    elif kind in ("step", "multistep"):
        epoch = step // max(steps_per_epoch, 1)
        milestones = cfg.milestones or (
            [int(total_steps / max(steps_per_epoch, 1) * 0.7)] if kind == "step" else []
        )
        f = cfg.lr_gamma ** sum(epoch >= m for m in milestones)
    else:
        raise ValueError(f"unknown scheduler {kind}")
    return f * warm


def apply_lr(optimizer, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor
