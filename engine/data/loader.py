"""The training DataLoader: one place that decides order, workers and per-worker setup, used by the trainer
and the data-loading benchmark alike."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from engine.data.dataset import DetectionDataset, collate


def init_worker(worker_id: int) -> None:
    """Seed numpy/random from torch's per-worker seed. (OpenCV's thread count is left alone: calling
    cv2.setNumThreads in a worker forked from a parent whose OpenCV pool has run hangs the worker.)"""
    del worker_id
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def train_loader(
    dataset: DetectionDataset,
    batch: int,
    workers: int,
    seed: int,
    epoch: int,
    sampler: Sampler | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader over `dataset` for `epoch`: shuffled with (seed + epoch) unless a (distributed) sampler is given;
    the last partial batch is dropped when there is more than one batch."""
    dataset.set_epoch(epoch)
    if sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        drop_last=len(dataset) > batch,
        generator=g,
        worker_init_fn=init_worker,
        pin_memory=pin_memory,
    )
