"""VisDrone-DET txt: `left,top,width,height,score,category,truncation,occlusion` per row, pixels.

Category 0 ("ignored regions") becomes ignore boxes; 11 ("others") is dropped; 1..10 become classes 0..9.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.formats.yolo import LabelProblem
from engine.data.records import ImageRecord

CLASSES = [
    "pedestrian",
    "people",
    "bicycle",
    "car",
    "van",
    "truck",
    "tricycle",
    "awning-tricycle",
    "bus",
    "motor",
]


@dataclass
class VisDroneStats:
    rows: int = 0
    kept: int = 0
    ignored_regions: int = 0
    others_dropped: int = 0
    problems: list[LabelProblem] = field(default_factory=list)


def read_visdrone_file(path: Path, width: int, height: int, stats: VisDroneStats) -> ImageRecord | None:
    boxes, labels, ignore = [], [], []
    for i, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = [p for p in line.strip().rstrip(",").split(",") if p != ""]
        if not parts:
            continue
        stats.rows += 1
        if len(parts) < 6:
            stats.problems.append(LabelProblem(path, i, "expected at least 6 comma-separated values", line))
            continue
        try:
            x, y, w, h, _score, cat = (int(float(v)) for v in parts[:6])
        except ValueError:
            stats.problems.append(LabelProblem(path, i, "not a number", line))
            continue
        if cat == 0:
            ignore.append([x, y, x + w, y + h])
            stats.ignored_regions += 1
        elif cat == 11:
            stats.others_dropped += 1
        elif 1 <= cat <= 10 and w > 0 and h > 0:
            boxes.append([x, y, x + w, y + h])
            labels.append(cat - 1)
            stats.kept += 1
        else:
            stats.problems.append(LabelProblem(path, i, f"invalid category {cat} or empty box", line))
    return ImageRecord(
        Path(path),
        width,
        height,
        np.asarray(boxes, np.float32).reshape(-1, 4),
        labels,
        np.asarray(ignore, np.float32).reshape(-1, 4),
    )


def read_visdrone(
    images_dir: str | Path, annotations_dir: str | Path
) -> tuple[list[ImageRecord], VisDroneStats]:
    stats = VisDroneStats()
    records = []
    for img in sorted(Path(images_dir).glob("*.jpg")):
        ann = Path(annotations_dir) / f"{img.stem}.txt"
        with Image.open(img) as im:
            w, h = im.size
        if not ann.is_file():
            stats.problems.append(LabelProblem(ann, None, "annotation file missing"))
            continue
        rec = read_visdrone_file(ann, w, h, stats)
        rec.path = img
        records.append(rec)
    return records, stats
