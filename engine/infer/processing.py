"""The one pre- and post-processing every backend shares (the backends only run the compiled graph)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.geometry import ResizeMeta, boxes_to_original, plan_resize, resize_image


@dataclass
class Detections:
    """Detections of one image in original-image pixels, sorted by descending score."""

    boxes: np.ndarray  # (N, 4) xyxy float32
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int64
    names: list[str] = field(default_factory=list)  # class names, indexed by label

    def __len__(self) -> int:
        return len(self.scores)

    def to_yolo(self, width: int, height: int) -> str:
        """YOLO label lines (`class cx cy w h`, normalised to the image size), one per detection."""
        lines = []
        for (x1, y1, x2, y2), c in zip(self.boxes.tolist(), self.labels.tolist(), strict=True):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            lines.append(f"{c} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
        return "\n".join(lines) + ("\n" if lines else "")

    def to_coco(self, image_id: int) -> list[dict]:
        """COCO result dicts (`bbox` as x, y, w, h pixels); category ids are the labels."""
        return [
            {
                "image_id": image_id,
                "category_id": int(c),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(s),
            }
            for (x1, y1, x2, y2), s, c in zip(
                self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), strict=True
            )
        ]

    def draw(self, image_bgr: np.ndarray) -> np.ndarray:
        """A copy of the image with these boxes, class names and scores drawn."""
        from engine.metrics.gallery import draw_detections

        return draw_detections(image_bgr, pred=(self.boxes, self.scores, self.labels), class_names=self.names)

    def to_json(self, limit: int | None = None) -> dict:
        """The first `limit` detections as plain lists (how a target device sends them back to be scored).
        float32 values survive the trip through JSON's doubles exactly."""
        n = len(self) if limit is None else min(limit, len(self))
        return {
            "boxes": self.boxes[:n].tolist(),
            "scores": self.scores[:n].tolist(),
            "labels": self.labels[:n].tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Detections:
        return cls(
            np.asarray(data["boxes"], np.float32).reshape(-1, 4),
            np.asarray(data["scores"], np.float32).reshape(-1),
            np.asarray(data["labels"], np.int64).reshape(-1),
        )


def preprocess(
    image_bgr: np.ndarray, imgsz: tuple[int, int], keep_ratio: bool, cut_padding: bool = False
) -> tuple[np.ndarray, ResizeMeta]:
    """BGR uint8 HxWx3 -> (1, 3, H, W) float32 RGB in [0, 1], and how it was resized."""
    if image_bgr is None or image_bgr.ndim != 3:
        raise ValueError("expected a BGR image array of shape HxWx3")
    meta = plan_resize(image_bgr.shape[:2], imgsz, keep_ratio, cut_padding=cut_padding)
    return to_blob(resize_image(image_bgr, meta)), meta


def to_blob(image_bgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR -> (1, 3, H, W) float32 RGB / 255, the values torch's `.float().div(255)` gives.

    One contiguous uint8 plane per channel (cv2.split) divided straight into its slot of the output: about
    twice as fast as a strided numpy transpose-and-cast of the interleaved image.
    """
    h, w = image_bgr.shape[:2]
    blob = np.empty((1, 3, h, w), np.float32)
    for c, plane in enumerate(reversed(cv2.split(image_bgr))):
        np.divide(plane, np.float32(255.0), out=blob[0, c], dtype=np.float32)
    return blob


def postprocess(
    labels: np.ndarray, boxes: np.ndarray, scores: np.ndarray, meta: ResizeMeta, conf: float
) -> Detections:
    """Graph outputs for one image (boxes in input pixels) -> detections above `conf` in original pixels."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    keep = scores >= conf
    order = np.argsort(-scores[keep], kind="stable")
    b = boxes_to_original(np.asarray(boxes, np.float32).reshape(-1, 4)[keep][order], meta)
    return Detections(b, scores[keep][order], np.asarray(labels, np.int64).reshape(-1)[keep][order])
