"""Gradient accumulation, AMP loss scaling, clipping, the optimizer step and the EMA update, in one place."""

from __future__ import annotations

import torch
from torch import nn

from engine.train.ema import ModelEMA


class OptimizerStepper:
    """`backward(loss)` for every batch; `maybe_step(batch_index, last)` steps every `accumulate` batches.

    The loss is divided by `accumulate`, so the update of batch B x accum A equals that of one batch of B*A for
    a mean-reduced loss; a final partial group (the epoch's last batches) still steps, scaled to what it saw.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        accumulate: int = 1,
        clip_grad: float | None = None,
        ema: ModelEMA | None = None,
    ):
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.accumulate, self.clip_grad, self.ema = accumulate, clip_grad, ema
        self.pending = 0  # batches accumulated since the last step

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss / self.accumulate).backward()
        self.pending += 1

    def discard(self) -> None:
        """Drop this batch's gradients (a non-finite loss)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.pending = 0

    def maybe_step(self, batch_index: int, last: bool) -> bool:
        """Step after every `accumulate` batches and at the end of the epoch; True when a step happened."""
        if not self.pending or not ((batch_index + 1) % self.accumulate == 0 or last):
            return False
        if self.pending < self.accumulate:  # a partial group: rescale so it is a mean over what it saw
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.accumulate / self.pending)
        if self.clip_grad:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the AMP-scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema:
            self.ema.update(self.model)
        self.pending = 0
        return True
