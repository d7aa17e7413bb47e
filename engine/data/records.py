"""The one in-memory record every format reader produces and every consumer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


@dataclass
class ImageRecord:
    """One image and its labels: boxes are xyxy in pixels of the original image."""

    path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=_empty_boxes)  # (N, 4) float32 xyxy pixels
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # (N,) 0..C-1
    ignore: np.ndarray = field(default_factory=_empty_boxes)  # (M, 4) regions not to be scored (VisDrone)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        self.ignore = np.asarray(self.ignore, np.float32).reshape(-1, 4)
        if len(self.boxes) != len(self.labels):
            raise ValueError(f"{self.path}: {len(self.boxes)} boxes but {len(self.labels)} labels")

    @property
    def is_background(self) -> bool:
        return len(self.boxes) == 0
