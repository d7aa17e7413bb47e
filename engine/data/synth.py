"""A licence-clean synthetic detection dataset (shapes on textured backgrounds), for the demo and tests.

Every class is a distinct shape with its own colour family, so a small model learns it in minutes on a CPU;
backgrounds mix gradients, blobs and noise so that "not an object" still has to be learnt.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "ring")
# base BGR colour per class; each object jitters around it
_COLOURS = {
    "circle": (40, 40, 220),
    "square": (220, 120, 30),
    "triangle": (40, 200, 40),
    "cross": (200, 40, 200),
    "ring": (30, 200, 230),
}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(60, 190, 3), rng.uniform(60, 190, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) % 1.0
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    for _ in range(rng.integers(2, 6)):  # soft blobs: structure that is not an object
        cx, cy, r = [*rng.uniform(0, size, 2).tolist(), rng.uniform(size * 0.05, size * 0.3)]
        mask = np.exp(-(((xx * size - cx) ** 2 + (yy * size - cy) ** 2) / (2 * r * r)))
        img += mask[..., None] * rng.uniform(-50, 50, 3)[None, None]
    img += rng.normal(0, rng.uniform(3, 12), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw(
    img: np.ndarray, cls: str, cx: float, cy: float, s: float, colour: tuple, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    h = s / 2
    if cls == "circle":
        cv2.circle(img, (round(cx), round(cy)), round(h), colour, -1, cv2.LINE_AA)
        return cx - h, cy - h, cx + h, cy + h
    if cls == "ring":
        cv2.circle(img, (round(cx), round(cy)), round(h * 0.8), colour, max(2, round(s * 0.18)), cv2.LINE_AA)
        r = h * 0.8 + max(2, round(s * 0.18)) / 2
        return cx - r, cy - r, cx + r, cy + r
    if cls == "square":
        w, hh = h * rng.uniform(0.8, 1.0), h * rng.uniform(0.8, 1.0)
        cv2.rectangle(img, (round(cx - w), round(cy - hh)), (round(cx + w), round(cy + hh)), colour, -1)
        return round(cx - w), round(cy - hh), round(cx + w) + 1, round(cy + hh) + 1
    if cls == "triangle":
        pts = np.array([[cx, cy - h], [cx - h, cy + h], [cx + h, cy + h]], np.float32)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)
        return cx - h, cy - h, cx + h, cy + h
    t = max(2, round(s * 0.22))  # cross
    cv2.rectangle(img, (round(cx - h), round(cy - t / 2)), (round(cx + h), round(cy + t / 2)), colour, -1)
    cv2.rectangle(img, (round(cx - t / 2), round(cy - h)), (round(cx + t / 2), round(cy + h)), colour, -1)
    return cx - h, cy - h, cx + h, cy + h


def _iou(a: tuple, b: tuple) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def make_image(rng: np.random.Generator, size: int, max_objects: int = 6) -> tuple[np.ndarray, list]:
    """One image and its labels [(class_id, x1, y1, x2, y2)]; ~10% are background-only."""
    img = _background(rng, size)
    n = 0 if rng.random() < 0.1 else int(rng.integers(1, max_objects + 1))
    objects: list = []
    for _ in range(n * 4):  # a few attempts per object to avoid heavy overlap
        if len(objects) == n:
            break
        cls_id = int(rng.integers(len(CLASSES)))
        s = rng.uniform(0.1, 0.35) * size
        cx, cy = rng.uniform(s / 2, size - s / 2, 2)
        box = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
        if any(_iou(box, o[1:]) > 0.3 for o in objects):
            continue
        colour = tuple(int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in _COLOURS[CLASSES[cls_id]])
        x1, y1, x2, y2 = _draw(img, CLASSES[cls_id], cx, cy, s, colour, rng)
        objects.append((cls_id, max(0.0, x1), max(0.0, y1), min(float(size), x2), min(float(size), y2)))
    return img, objects


def generate(
    root: str | Path,
    images: int = 240,
    size: int = 256,
    seed: int = 0,
    val: float = 0.2,
    test: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a YOLO-layout dataset (images/, labels/, classes.txt, train/val/test CSVs) under `root`."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(images):
        img, objects = make_image(rng, size)
        name = f"synth_{i:05d}"
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        with open(root / "labels" / f"{name}.txt", "w") as f:
            for c, x1, y1, x2, y2 in objects:
                f.write(
                    f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                    f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}\n"
                )
        names.append(f"images/{name}.jpg")
        if progress:
            progress(i + 1, images)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    n_val, n_test = round(images * val), round(images * test)
    order = rng.permutation(len(names))
    splits = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    for split, idx in splits.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([[names[i]] for i in sorted(idx)])
    return root
