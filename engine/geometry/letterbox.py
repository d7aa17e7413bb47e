"""Plain resize and letterbox, as one plan that training, evaluation and inference all share.

A `ResizeMeta` records how an original image maps onto the model input, so boxes can be mapped back exactly.
With `cut_padding=True` a letterboxed image is not padded to the full square: each side is only rounded up to
`stride`, which is the article's "dynamic" mode (a model exported with dynamic H/W runs on less grey padding).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class ResizeMeta:
    """How an original (h, w) image was placed onto the model input (input_h, input_w)."""

    orig_h: int
    orig_w: int
    input_h: int
    input_w: int
    scale_x: float
    scale_y: float
    pad_left: int
    pad_top: int
    keep_ratio: bool

    @property
    def content_hw(self) -> tuple[int, int]:
        """Height and width of the resized image content inside the input (no padding)."""
        return round(self.orig_h * self.scale_y), round(self.orig_w * self.scale_x)

    def to_dict(self) -> dict:
        return asdict(self)


def plan_resize(
    orig_hw: tuple[int, int],
    target_hw: tuple[int, int],
    keep_ratio: bool,
    cut_padding: bool = False,
    stride: int = 32,
) -> ResizeMeta:
    """Plan the resize of an image of `orig_hw` to the model input `target_hw`.

    keep_ratio=False stretches to the target. keep_ratio=True scales the image to fit inside the target (the
    longest side touches it), then centres it on grey padding. With cut_padding the input is shrunk to the
    content rounded up to a multiple of `stride` on each side (never larger than the target).
    """
    oh, ow = int(orig_hw[0]), int(orig_hw[1])
    th, tw = int(target_hw[0]), int(target_hw[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"image size must be positive, got {oh}x{ow}")
    if not keep_ratio:
        return ResizeMeta(oh, ow, th, tw, tw / ow, th / oh, 0, 0, False)
    scale = min(th / oh, tw / ow)
    nh, nw = max(1, round(oh * scale)), max(1, round(ow * scale))
    if cut_padding:
        th = min(th, int(math.ceil(nh / stride) * stride))
        tw = min(tw, int(math.ceil(nw / stride) * stride))
    pad_top, pad_left = (th - nh) // 2, (tw - nw) // 2
    return ResizeMeta(oh, ow, th, tw, nw / ow, nh / oh, pad_left, pad_top, True)


def resize_image(image: np.ndarray, meta: ResizeMeta, pad_value: int = PAD_VALUE) -> np.ndarray:
    """Apply a resize plan to an HxWxC uint8 image; returns an (input_h, input_w, C) image."""
    nh, nw = meta.content_hw
    # bilinear for both directions, like the official D-FINE resize; INTER_AREA is 8x slower on 1080p frames
    # and the same function serves training and inference, so they stay identical
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if not meta.keep_ratio:
        return resized
    out = np.full((meta.input_h, meta.input_w, image.shape[2]), pad_value, dtype=image.dtype)
    out[meta.pad_top : meta.pad_top + nh, meta.pad_left : meta.pad_left + nw] = resized
    return out


def boxes_to_original(boxes: np.ndarray, meta: ResizeMeta, clip: bool = True) -> np.ndarray:
    """Map xyxy boxes in model-input pixels back to original-image pixels."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - meta.pad_left) / meta.scale_x
    b[:, [1, 3]] = (b[:, [1, 3]] - meta.pad_top) / meta.scale_y
    if clip:
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, meta.orig_w)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, meta.orig_h)
    return b


def boxes_to_input(boxes: np.ndarray, meta: ResizeMeta) -> np.ndarray:
    """Map xyxy boxes in original-image pixels to model-input pixels (the inverse of boxes_to_original)."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]] * meta.scale_x + meta.pad_left
    b[:, [1, 3]] = b[:, [1, 3]] * meta.scale_y + meta.pad_top
    return b
