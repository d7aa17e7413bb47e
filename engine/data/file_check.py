"""The check of images and their label files, a batch at a time: what a pool worker runs, and what the result
cache stores (one result per image).

A batch's results cross to the parent as a `BatchResult`: a few arrays, and the few images with something to say
(a per-image object would cost the parent more to unpickle and walk than a small image costs to check). The cache
stores one plain `FileResult` tuple per image. Neither holds pixels: the image is dropped as soon as it is hashed.
"""

from __future__ import annotations

import locale
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from engine.data.formats.yolo import IMAGE_SUFFIXES
from engine.data.image_hash import HashBatch
from engine.data.label_batch import parse_label_batch

# what Path.read_text decodes with
TEXT_ENCODING = locale.getpreferredencoding(False)


@dataclass(frozen=True)
class FileCheckSettings:
    """What a per-file result depends on besides the files themselves (part of the cache's key)."""

    num_classes: int | None
    imgsz: tuple[int, int]
    min_px: float
    mosaic_scale: float

    def key(self) -> str:
        return f"v4|{self.num_classes}|{self.imgsz[0]}x{self.imgsz[1]}|{self.min_px:g}|{self.mosaic_scale:g}"


class FileResult(NamedTuple):
    """Everything the dataset-level checks need from one image (no pixels)."""

    status: str  # "ok" | "unsupported" | "corrupt"
    error: str | None
    size: int  # bytes: exact copies share size and dhash, so only files that do are compared (see checks.py)
    dhash: int | None
    width: int
    height: int
    label: str  # "missing" | "empty" | "labelled" | "" (image not read)
    findings: tuple  # (severity, kind, path, message, line) of the label, in report order
    boxes: int
    labels: tuple  # class id of every valid box


STATUSES = ("ok", "unsupported", "corrupt")
LABEL_STATES = ("", "missing", "empty", "labelled")
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_LABEL_CODE = {s: i for i, s in enumerate(LABEL_STATES)}


class BatchResult(NamedTuple):
    """The `FileResult`s of a batch of images, as arrays (one entry per image) and notes."""

    status: np.ndarray  # uint8: index in STATUSES
    size: np.ndarray  # int64
    dhash: np.ndarray  # uint64 (0 where the image was not read)
    width: np.ndarray  # int32
    height: np.ndarray  # int32
    label: np.ndarray  # uint8: index in LABEL_STATES
    boxes: np.ndarray  # int32
    labels: np.ndarray  # int64: class id of every valid box, image after image
    notes: list  # (index, error, findings) of each image not "ok" or with findings, in order

    @classmethod
    def of(cls, results: list) -> BatchResult:
        """The batch of these `FileResult`s (or tuples, or lists, in its field order)."""
        if not results:
            return cls(*(np.zeros(0, t) for t in _DTYPES), [])
        status, error, size, dh, width, height, label, findings, boxes, labels = zip(*results, strict=True)
        return cls(
            np.array([_STATUS_CODE[s] for s in status], np.uint8),
            np.array(size, np.int64),
            np.array([d or 0 for d in dh], np.uint64),
            np.array(width, np.int32),
            np.array(height, np.int32),
            np.array([_LABEL_CODE[s] for s in label], np.uint8),
            np.array(boxes, np.int32),
            np.fromiter((c for ids in labels for c in ids), np.int64),
            [
                (i, e, f)
                for i, (s, e, f) in enumerate(zip(status, error, findings, strict=True))
                if f or s != "ok"
            ],
        )

    def files(self) -> list[FileResult]:
        """One `FileResult` per image (what the cache stores)."""
        notes = {i: (e, tuple(map(tuple, f))) for i, e, f in self.notes}
        ends = np.cumsum(self.boxes).tolist()
        ids = self.labels.tolist()
        out, start = [], 0
        for i, (st, size, dh, w, h, lb, end) in enumerate(
            zip(
                self.status.tolist(),
                self.size.tolist(),
                self.dhash.tolist(),
                self.width.tolist(),
                self.height.tolist(),
                self.label.tolist(),
                ends,
                strict=True,
            )
        ):
            error, findings = notes.get(i, (None, ()))
            status = STATUSES[st]
            out.append(
                FileResult(
                    status,
                    error,
                    size,
                    dh if status == "ok" else None,
                    w,
                    h,
                    LABEL_STATES[lb],
                    findings,
                    end - start,
                    tuple(ids[start:end]),
                )
            )
            start = end
        return out


_DTYPES = (np.uint8, np.int64, np.uint64, np.int32, np.int32, np.uint8, np.int32, np.int64)


def decode_bytes(
    path: str | Path, data: bytes, suffix: str | None = None
) -> tuple[np.ndarray | None, str | None]:
    """The image in `data` (read from `path`, whose lower-case `suffix` may be given), or why it cannot be used."""
    jpeg = (suffix if suffix is not None else Path(path).suffix.lower()) in (".jpg", ".jpeg")
    # (the end-of-image marker, or padding after it; rstrip copies the file, so only when needed)
    if jpeg and not data.endswith(b"\xff\xd9") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None, "truncated JPEG (no end-of-image marker): re-export or remove it"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, "cannot be decoded (corrupt or not an image)"
    return img, None


_UNSUPPORTED, _CORRUPT = STATUSES.index("unsupported"), STATUSES.index("corrupt")
_MISSING, _EMPTY, _LABELLED = (LABEL_STATES.index(s) for s in ("missing", "empty", "labelled"))
_MISSING_MSG = "no label file: treated as background (create an empty file to mark it as such)"


def dataset_layout(root: str | Path) -> tuple[str, str]:
    """The images/ and labels/ folders of a dataset, each ending in a separator: what `label_paths` takes."""
    root = Path(root)  # spelt as the listing (`files_under(str(root / "images"))`) spells images
    return str(root / "images") + os.sep, str(root / "labels") + os.sep


def label_paths(layout: tuple[str, str], images: list[str]) -> list[str]:
    """labels/<same relative path>.txt of every image under images/ (the name alone for one elsewhere), by string
    operations; `layout` is `dataset_layout(root)`."""
    return [label for label, _ in _labels_and_suffixes(layout, images)]


def _labels_and_suffixes(layout: tuple[str, str], images: list[str]) -> list[tuple[str, str]]:
    """(label path, lower-case suffix) of every image: `label_paths`, and `Path(image).suffix.lower()`."""
    prefix, labels_dir = layout
    out = []
    for p in images:
        rel = p[len(prefix) :] if p.startswith(prefix) else os.path.basename(p)
        dot, name_at = rel.rfind("."), rel.rfind(os.sep) + 1
        # as Path.with_suffix: a dot that starts the name, or ends it, is not a suffix
        if name_at < dot < len(rel) - 1:
            out.append((labels_dir + rel[:dot] + ".txt", rel[dot:].lower()))
        else:
            out.append((labels_dir + rel + ".txt", ""))
    return out


def check_files(settings: FileCheckSettings, layout: tuple[str, str], images: list[str]) -> BatchResult:
    """The check of a batch of images and their label files (found by `label_paths(layout, images)`): what one
    pool task runs.

    One read and one decode per image, everything else computed from them; hashes, label values and box sizes
    of the whole batch go through single array operations (numpy costs more per call than a small file does).
    """
    n = len(images)
    status, label_state = bytearray(n), bytearray(n)  # codes: STATUSES[0] is "ok", LABEL_STATES[0] is ""
    size, width, height = [0] * n, [0] * n, [0] * n
    notes: dict[int, tuple[str | None, tuple]] = {}  # image -> (error, findings)
    read: list[int] = []  # the images decoded, whose hashes follow
    hashes = HashBatch()
    texts: list[tuple[int, str, str]] = []  # (image, label path, text) of the non-empty label files
    for k, (img_path, (label, suffix)) in enumerate(
        zip(images, _labels_and_suffixes(layout, images), strict=True)
    ):
        if suffix not in IMAGE_SUFFIXES:
            status[k] = _UNSUPPORTED
            notes[k] = (None, ())
            continue
        data = read_file(img_path)
        size[k] = len(data)
        img, err = decode_bytes(img_path, data, suffix)
        del data
        if err:
            status[k] = _CORRUPT
            notes[k] = (err, ())
            continue
        height[k], width[k] = img.shape[:2]
        read.append(k)
        hashes.add(img)
        del img  # bounded memory: nothing of the image outlives its check
        try:
            # decoded as Path.read_text would (its universal newlines change nothing that splitlines sees)
            text = read_file(label).decode(TEXT_ENCODING, errors="replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            label_state[k] = _MISSING
            notes[k] = (None, (("warning", "missing label", label, _MISSING_MSG, None),))
            continue
        if text.strip():
            label_state[k] = _LABELLED
            texts.append((k, label, text))
        else:
            label_state[k] = _EMPTY
    boxes, labels = np.zeros(n, np.int32), np.zeros(0, np.int64)
    if texts:
        labels = _check_labels(settings, texts, width, height, boxes, notes)
    dhashes = np.zeros(n, np.uint64)
    if read:
        dhashes[read] = hashes.hashes()
    return BatchResult(
        np.frombuffer(status, np.uint8),
        np.array(size, np.int64),
        dhashes,
        np.array(width, np.int32),
        np.array(height, np.int32),
        np.frombuffer(label_state, np.uint8),
        boxes,
        labels,
        [(k, e, f) for k, (e, f) in sorted(notes.items())],
    )


def _check_labels(
    settings: FileCheckSettings,
    texts: list[tuple[int, str, str]],
    width: list[int],
    height: list[int],
    boxes: np.ndarray,
    notes: dict[int, tuple[str | None, tuple]],
) -> np.ndarray:
    """Parse the non-empty label files of a batch: the count of valid boxes of each image goes to `boxes`, its
    findings to `notes`; returns the class ids of all valid boxes, image after image."""
    sizes = [(width[k], height[k]) for k, _, _ in texts]
    batch = parse_label_batch(
        [t for _, _, t in texts], [lb for _, lb, _ in texts], sizes, settings.num_classes
    )
    boxes[[k for k, _, _ in texts]] = batch.counts
    tiny = _tiny_counts(batch.boxes, batch.counts, sizes, settings)
    for (k, label, text), problems, repeats, n_tiny in zip(
        texts, batch.problems, batch.maybe_repeated, tiny, strict=True
    ):
        if not (problems or repeats or n_tiny):
            continue
        findings = [("error", "bad label", str(p.path), f"{p.message}: {p.text!r}", p.line) for p in problems]
        if repeats:
            findings.extend(_repeated_rows(label, text))
        if n_tiny:
            ms = settings.mosaic_scale
            findings.append(
                (
                    "warning",
                    "too small",
                    label,
                    f"{n_tiny} object(s) under {settings.min_px:g} px at input {settings.imgsz[0]}x{settings.imgsz[1]}"
                    + (f" after mosaic scale {ms:g}" if ms != 1 else ""),
                    None,
                )
            )
        if findings:
            notes[k] = (None, tuple(findings))
    return batch.ids


def _repeated_rows(label: str, text: str) -> list[tuple]:
    """A finding for each row the label file repeats (equal text once stripped), at its first line."""
    stripped = [ln.strip() for ln in text.splitlines()]  # file lines, blank ones included
    lines = list(filter(None, stripped))
    if len(set(lines)) == len(lines):
        return []
    return [
        ("warning", "duplicate row", label, f"row repeated {k} times: {line!r}", stripped.index(line) + 1)
        for line, k in Counter(lines).items()
        if k > 1
    ]


def _tiny_counts(
    boxes: np.ndarray, counts: list[int], sizes: list[tuple[int, int]], settings: FileCheckSettings
) -> list[int]:
    """Of each file (`counts[i]` of `boxes`, xyxy pixels in an image of `sizes[i]`): the boxes whose shorter side
    falls under `min_px` at the network input."""
    if not len(boxes):
        return [0] * len(counts)
    w = np.repeat(np.asarray([s[0] for s in sizes], np.float32), counts)
    h = np.repeat(np.asarray([s[1] for s in sizes], np.float32), counts)
    scale = min(settings.imgsz[0], settings.imgsz[1]) * settings.mosaic_scale
    side = np.minimum((boxes[:, 2] - boxes[:, 0]) * scale / w, (boxes[:, 3] - boxes[:, 1]) * scale / h)
    owner = np.repeat(np.arange(len(counts)), counts)
    return np.bincount(owner[side < settings.min_px], minlength=len(counts)).tolist()


def read_file(path: str | Path) -> bytes:
    """The bytes of a file, read without the buffered-file objects of `open` (a third of the time of reading a
    small label file goes to building them)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_only(img_path: str | Path) -> int:
    """Read and decode one file, nothing else (the benchmark's floor for the check); returns its height."""
    img = cv2.imdecode(np.frombuffer(read_file(img_path), np.uint8), cv2.IMREAD_COLOR)
    return 0 if img is None else img.shape[0]


def decode_files(paths: list[str]) -> list[int]:
    """`decode_only` on a batch, as `check_files` batches the check (so the benchmark's floor is fair)."""
    return [decode_only(p) for p in paths]
