"""The check of one image and its label file: what a pool worker runs, and what the result cache stores.

A result is a plain tuple (cheap to pickle between processes and to load from the cache) and holds no pixels:
the image is dropped as soon as its hash is taken.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from engine.data.formats.yolo import IMAGE_SUFFIXES, label_path_for, parse_label_file


@dataclass(frozen=True)
class FileCheckSettings:
    """What a per-file result depends on besides the files themselves (part of the cache's key)."""

    num_classes: int | None
    imgsz: tuple[int, int]
    min_px: float
    mosaic_scale: float

    def key(self) -> str:
        return f"v1|{self.num_classes}|{self.imgsz[0]}x{self.imgsz[1]}|{self.min_px:g}|{self.mosaic_scale:g}"


class FileResult(NamedTuple):
    """Everything the dataset-level checks need from one image (no pixels)."""

    status: str  # "ok" | "unsupported" | "corrupt"
    error: str | None
    md5: str | None
    dhash: int | None
    width: int
    height: int
    label: str  # "missing" | "empty" | "labelled" | "" (image not read)
    findings: tuple  # (severity, kind, path, message, line) of the label, in report order
    boxes: int
    labels: tuple  # class id of every valid box


def dhash(image: np.ndarray, size: int = 8) -> int:
    """64-bit difference hash: robust to resizing/re-encoding, so near-duplicate frames collide."""
    g = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    # first bit most significant, as int("0101...", 2) reads them
    return int.from_bytes(np.packbits(bits).tobytes(), "big") >> (-len(bits) % 8)


def decode_bytes(path: Path, data: bytes) -> tuple[np.ndarray | None, str | None]:
    """The image in `data` (read from `path`), or why it cannot be used."""
    if path.suffix.lower() in (".jpg", ".jpeg") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None, "truncated JPEG (no end-of-image marker): re-export or remove it"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, "cannot be decoded (corrupt or not an image)"
    return img, None


def check_file(root: Path, img_path: Path, settings: FileCheckSettings) -> FileResult:
    """Decode, hash and label-check one image of the YOLO dataset at `root`."""
    if img_path.suffix.lower() not in IMAGE_SUFFIXES:
        return FileResult("unsupported", None, None, None, 0, 0, "", (), 0, ())
    data = img_path.read_bytes()
    img, err = decode_bytes(img_path, data)
    if err:
        return FileResult("corrupt", err, None, None, 0, 0, "", (), 0, ())
    h, w = img.shape[:2]
    digest = hashlib.md5(data).hexdigest()
    hsh = dhash(img)
    del img, data  # bounded memory: nothing of the image outlives its check
    label = label_path_for(root, img_path)
    if not label.is_file():
        msg = "no label file: treated as background (create an empty file to mark it as such)"
        return FileResult(
            "ok",
            None,
            digest,
            hsh,
            w,
            h,
            "missing",
            (("warning", "missing label", str(label), msg, None),),
            0,
            (),
        )
    text = label.read_text(errors="replace")
    if not text.strip():
        return FileResult("ok", None, digest, hsh, w, h, "empty", (), 0, ())
    findings = []
    boxes, labels, problems = parse_label_file(label, w, h, settings.num_classes)
    for p in problems:
        findings.append(("error", "bad label", str(p.path), f"{p.message}: {p.text!r}", p.line))
    rows = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for row, k in Counter(rows).items():
        if k > 1:
            findings.append(
                (
                    "warning",
                    "duplicate row",
                    str(label),
                    f"row repeated {k} times: {row!r}",
                    rows.index(row) + 1,
                )
            )
    if len(boxes):
        scale = min(settings.imgsz[0], settings.imgsz[1]) * settings.mosaic_scale
        side = np.minimum((boxes[:, 2] - boxes[:, 0]) * scale / w, (boxes[:, 3] - boxes[:, 1]) * scale / h)
        tiny = int((side < settings.min_px).sum())
        if tiny:
            ms = settings.mosaic_scale
            findings.append(
                (
                    "warning",
                    "too small",
                    str(label),
                    f"{tiny} object(s) under {settings.min_px:g} px at input {settings.imgsz[0]}x{settings.imgsz[1]}"
                    + (f" after mosaic scale {ms:g}" if ms != 1 else ""),
                    None,
                )
            )
    return FileResult(
        "ok", None, digest, hsh, w, h, "labelled", tuple(findings), len(boxes), tuple(labels.tolist())
    )


def decode_only(img_path: Path) -> int:
    """Read and decode one file, nothing else (the benchmark's floor for the check); returns its height."""
    img = cv2.imdecode(np.fromfile(img_path, np.uint8), cv2.IMREAD_COLOR)
    return 0 if img is None else img.shape[0]
