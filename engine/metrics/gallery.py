"""Drawing ground truth (green) and predictions (blue) on images, as the article shows them."""

from __future__ import annotations

import cv2
import numpy as np

GREEN, BLUE, RED = (60, 200, 60), (230, 120, 30), (40, 40, 230)


def draw_detections(
    image_bgr: np.ndarray,
    gt: tuple | None = None,
    pred: tuple | None = None,
    class_names: list[str] | None = None,
    title: str = "",
) -> np.ndarray:
    """Return a copy of the image with GT boxes (green) and predicted boxes with scores (blue)."""
    img = image_bgr.copy()
    scale = max(1.0, max(img.shape[:2]) / 800)
    thick, font = max(1, round(2 * scale)), 0.45 * scale
    names = class_names or []

    def label(c: int) -> str:
        return names[c] if 0 <= c < len(names) else str(c)

    if gt is not None:
        for (x1, y1, x2, y2), c in zip(*gt, strict=True):
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), GREEN, thick)
            cv2.putText(
                img, label(int(c)), (int(x1), max(10, int(y1) - 3)), cv2.FONT_HERSHEY_SIMPLEX, font, GREEN, 1
            )
    if pred is not None:
        for (x1, y1, x2, y2), s, c in zip(*pred, strict=True):
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), BLUE, thick)
            cv2.putText(
                img,
                f"{label(int(c))} {s:.2f}",
                (int(x1), int(y2) + int(12 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX,
                font,
                BLUE,
                1,
            )
    if title:
        cv2.putText(img, title, (5, int(18 * scale)), cv2.FONT_HERSHEY_SIMPLEX, font * 1.2, RED, 2)
    return img


def grid(images: list[np.ndarray], cols: int = 4, cell: int = 320) -> np.ndarray:
    """Tile images (each fitted into cell x cell on grey) into one picture."""
    if not images:
        return np.full((cell, cell, 3), 114, np.uint8)
    rows = -(-len(images) // cols)
    out = np.full((rows * cell, cols * cell, 3), 114, np.uint8)
    for k, im in enumerate(images):
        r = cell / max(im.shape[:2])
        small = cv2.resize(im, (max(1, int(im.shape[1] * r)), max(1, int(im.shape[0] * r))))
        y, x = (k // cols) * cell, (k % cols) * cell
        out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out
