"""Mosaic (4 images on a 2x2 canvas + random affine), mixup and cutout, with exact box bookkeeping."""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.geometry.letterbox import PAD_VALUE


def random_affine_matrix(
    rng: np.random.Generator,
    out_size: int,
    canvas: int,
    scale: tuple[float, float],
    degrees: float,
    translate: float,
    shear: float,
) -> np.ndarray:
    """A 2x3 matrix mapping a canvas centred on its middle to an out_size image, with random transform."""
    c = np.eye(3)
    c[0, 2] = c[1, 2] = -canvas / 2  # move the canvas centre to the origin
    r = np.eye(3)
    a, s = rng.uniform(-degrees, degrees), rng.uniform(*scale)
    r[:2] = cv2.getRotationMatrix2D((0, 0), a, s)
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size
    t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size
    return (t @ sh @ r @ c)[:2]


def transform_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Bounding rectangles of the 4 corners of each xyxy box under the 2x3 affine `m`."""
    if not len(boxes):
        return boxes.reshape(0, 4)
    x1, y1, x2, y2 = boxes.T
    corners = np.stack(
        [np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1
    )  # (N, 4, 2)
    pts = corners @ m[:, :2].T + m[:, 2]
    return np.concatenate([pts.min(1), pts.max(1)], 1).astype(np.float32)


def filter_boxes(
    before: np.ndarray,
    after: np.ndarray,
    size: tuple[int, int],
    min_px: float,
    min_area_ratio: float = 0.1,
    max_aspect: float = 20.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image; keep those still big enough, not mostly cut away, and not sliver-shaped."""
    h, w = size
    clipped = after.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    full = (after[:, 2] - after[:, 0]) * (after[:, 3] - after[:, 1])
    keep = (bw >= min_px) & (bh >= min_px) & (bw * bh >= min_area_ratio * np.maximum(full, 1e-6))
    keep &= np.maximum(bw / np.maximum(bh, 1e-6), bh / np.maximum(bw, 1e-6)) < max_aspect
    del before
    return clipped[keep], keep


def mosaic4(
    images: list[np.ndarray],
    boxes: list[np.ndarray],
    labels: list[np.ndarray],
    out_size: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    degrees: float,
    translate: float,
    shear: float,
    min_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place 4 images (each fitted to out_size) around a random centre of a 2x canvas, then random-affine it."""
    s = out_size
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, np.uint8)
    xc, yc = (int(rng.uniform(0.5 * s, 1.5 * s)) for _ in range(2))
    all_boxes, all_labels = [], []
    for i, (img, b) in enumerate(zip(images, boxes, strict=True)):
        h0, w0 = img.shape[:2]
        r = s / max(h0, w0)
        if r != 1:
            img = cv2.resize(
                img, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=cv2.INTER_LINEAR
            )
        h, w = img.shape[:2]
        # each image touches the centre from its quadrant
        if i == 0:
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif i == 1:
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * s), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif i == 2:
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * s, yc + h)
            x1b, y1b = w - (x2a - x1a), 0
        else:
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * s), min(2 * s, yc + h)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = img[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        shifted = b * r + np.array([x1a - x1b, y1a - y1b, x1a - x1b, y1a - y1b], np.float32)
        all_boxes.append(shifted)
        all_labels.append(labels[i])
    bx = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), np.float32)
    lb = np.concatenate(all_labels) if all_labels else np.zeros((0,), np.int64)
    m = random_affine_matrix(rng, s, 2 * s, scale, degrees, translate, shear)
    out = cv2.warpAffine(canvas, m, (s, s), borderValue=(PAD_VALUE,) * 3)
    moved = transform_boxes(bx, m)
    kept, keep = filter_boxes(bx, moved, (s, s), min_px)
    return out, kept, lb[keep]


def mixup(
    img1: np.ndarray,
    boxes1: np.ndarray,
    labels1: np.ndarray,
    img2: np.ndarray,
    boxes2: np.ndarray,
    labels2: np.ndarray,
    rng: np.random.Generator,
    alpha: float = 0.5,
):
    """Blend two same-size images; detection keeps both images' boxes (more objects per image)."""
    lam = rng.uniform(alpha, 1 - alpha) if alpha < 0.5 else 0.5
    img = (img1.astype(np.float32) * lam + img2.astype(np.float32) * (1 - lam)).astype(np.uint8)
    return img, np.concatenate([boxes1, boxes2]), np.concatenate([labels1, labels2])


def cutout(
    img: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    holes: tuple[int, int],
    size: tuple[float, float],
    min_visible: float = 0.4,
):
    """Black out random rectangles; boxes that lose more than 1 - min_visible of their area are dropped."""
    h, w = img.shape[:2]
    img = img.copy()
    covered = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(holes[0], holes[1] + 1))):
        hh, ww = int(rng.uniform(*size) * h), int(rng.uniform(*size) * w)
        y, x = int(rng.integers(0, max(1, h - hh))), int(rng.integers(0, max(1, w - ww)))
        img[y : y + hh, x : x + ww] = 0
        covered[y : y + hh, x : x + ww] = True
    keep = []
    for x1, y1, x2, y2 in boxes.astype(int):
        region = covered[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)]
        keep.append(region.size == 0 or (1 - region.mean()) >= min_visible)
    keep = np.asarray(keep, bool)
    return img, boxes[keep] if len(boxes) else boxes, labels[keep] if len(labels) else labels
