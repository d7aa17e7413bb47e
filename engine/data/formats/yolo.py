"""YOLO layout: images/, labels/ (same relative names, .txt: `class cx cy w h`, normalised), classes.txt or
data.yaml (`names:`), optional split CSVs of relative image paths."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from engine.data.file_cache import FileCache
from engine.data.records import ImageRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset problem a user must fix; the message names the file (and line)."""


class SplitListError(DatasetError):
    """A split CSV that cannot be read as text rows."""

    def __init__(self, path: Path, reason: str, line: int | None = None):
        self.path, self.reason, self.line = Path(path), reason, line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass
class LabelProblem:
    """A defect in one label file, with where it is."""

    path: Path
    line: int | None
    message: str
    text: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}" + (f" ({self.text!r})" if self.text else "")


def read_classes(root: Path, classes: list[str] | None = None) -> list[str]:
    """Class names from the config, else classes.txt, else data.yaml `names:`."""
    if classes:
        return list(classes)
    root = Path(root)
    if (root / "classes.txt").is_file():
        return [ln.strip() for ln in (root / "classes.txt").read_text().splitlines() if ln.strip()]
    if (root / "data.yaml").is_file():
        names = (yaml.safe_load((root / "data.yaml").read_text()) or {}).get("names")
        if isinstance(names, dict):
            return [names[k] for k in sorted(names)]
        if isinstance(names, list):
            return [str(n) for n in names]
    raise DatasetError(
        f"{root}: no class names: add classes.txt (one name a line) or data.yaml (names: [...]), "
        "or set data.classes=[a,b,...]"
    )


def parse_label_file(
    path: Path, width: int, height: int, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[LabelProblem]]:
    """Boxes (xyxy pixels) and labels of one YOLO txt file; malformed rows are reported and skipped."""
    return parse_label_text(path.read_text(errors="replace"), path, width, height, num_classes)


def parse_label_text(
    text: str, path: str | Path, width: int, height: int, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[LabelProblem]]:
    """`parse_label_file` on the already read text of `path` (the data check reads each label file once)."""
    boxes, labels, problems = [], [], []
    for i, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            problems.append(
                LabelProblem(
                    Path(path), i, f"expected 5 values (class cx cy w h), got {len(parts)}", line.strip()
                )
            )
            continue
        try:
            c, cx, cy, w, h = map(float, parts)
            cls = int(c)
        except (ValueError, OverflowError):  # "x", "nan", "inf"
            problems.append(LabelProblem(Path(path), i, "not a number", line.strip()))
            continue
        if num_classes is not None and not 0 <= cls < num_classes:
            problems.append(
                LabelProblem(Path(path), i, f"class id {cls} outside 0..{num_classes - 1}", line.strip())
            )
            continue
        if min(cx, cy, w, h) < 0 or max(cx, cy, w, h) > 1.0 + 1e-6:
            problems.append(LabelProblem(Path(path), i, "coordinates not normalised to [0, 1]", line.strip()))
            continue
        if w <= 0 or h <= 0:
            problems.append(LabelProblem(Path(path), i, "zero or negative box size", line.strip()))
            continue
        boxes.append(
            (
                max(0.0, (cx - w / 2)) * width,
                max(0.0, (cy - h / 2)) * height,
                min(1.0, (cx + w / 2)) * width,
                min(1.0, (cy + h / 2)) * height,
            )
        )
        labels.append(cls)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64), problems


SPLIT_LIST_FORMAT = "a split list is UTF-8 text, one image path a line (relative to the dataset root)"


def split_rows(csv_path: Path) -> list[str]:
    """The image paths (relative to the dataset root) a split CSV lists; `SplitListError` if it is not text."""
    rows = _plain_split_rows(csv_path)
    if rows is not None:
        return rows
    try:
        f = open(csv_path, newline="")  # noqa: SIM115 (closed below: the errors of open and of reading differ)
    except OSError as e:
        raise SplitListError(csv_path, f"cannot be read ({e.strerror or e})") from None
    with f:
        reader = csv.reader(f)
        try:
            return [row[0].strip() for row in reader if row and row[0].strip()]
        except UnicodeDecodeError as e:
            reason = f"not text (byte {e.start} is not {e.encoding}): {SPLIT_LIST_FORMAT}"
            raise SplitListError(csv_path, reason) from None
        except csv.Error as e:  # a NUL byte, an unclosed quote at the end
            raise SplitListError(csv_path, f"{e}: {SPLIT_LIST_FORMAT}", reader.line_num or None) from None


def _plain_split_rows(csv_path: Path) -> list[str] | None:
    """What the CSV reader gives for a list with one plain path a line (no quote, comma, NUL or line end of
    str's own), read by a few string operations instead of a row at a time; None for any other list."""
    from engine.data.file_check import TEXT_ENCODING, read_file

    try:
        text = read_file(csv_path).decode(TEXT_ENCODING)
    except (OSError, UnicodeError, LookupError):
        return None  # the reader names the problem
    if any(c in text for c in '",\0\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'):
        return None
    return list(filter(None, map(str.strip, text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))))


def split_images(root: Path, split: str) -> list[Path]:
    """Image paths of a split: a CSV of relative paths, a folder under root, or (missing) every image."""
    root = Path(root)
    cand = root / split
    if cand.suffix == ".csv" or (root / f"{split}.csv").is_file():
        csv_path = cand if cand.suffix == ".csv" else root / f"{split}.csv"
        if not csv_path.is_file():
            raise DatasetError(
                f"split file not found: {csv_path} (make splits with `detcli data split {root}`)"
            )
        return [root / rel for rel in split_rows(csv_path)]
    folder = cand if cand.is_dir() else root / "images" / split
    if folder.is_dir():
        from engine.data.file_walk import files_under  # the sorted(rglob) order, without a Path per file

        return [Path(p) for p in files_under(str(folder)) if os.path.splitext(p)[1].lower() in IMAGE_SUFFIXES]
    raise DatasetError(f"{root}: no split '{split}' (expected {split}.csv or a folder images/{split}/)")


UNREADABLE = "unreadable image"


class ImageSizeCache:
    """Upright (width, height) of images, shared by `data check`, `data stats` and dataset building through
    `<root>/.detcli-cache/`: a large dataset's headers are read once, not on every run."""

    def __init__(self, root: Path, enabled: bool = True):
        # a split's records see part of the dataset: entries of the other images are kept, not dropped
        self._cache = FileCache(root, "sizes", "v1", enabled, prune=False)
        self.enabled = enabled

    @staticmethod
    def exists(root: Path) -> bool:
        """Whether a size cache was written for the dataset at `root`."""
        return FileCache(root, "sizes", "v1", enabled=False, prune=False).path.is_file()

    def get(self, image: str, key: str) -> tuple[int, int] | None:
        """The size stored for `image` under `key` (its 'size:mtime', see `stat_key_strings`), else None."""
        hit = self._cache.get(image, key)
        return (int(hit[0]), int(hit[1])) if hit else None

    def put(self, image: str, key: str, width: int, height: int) -> None:
        self._cache.put(image, key, [width, height])

    def save(self) -> None:
        self._cache.save()


def _upright_size(image: Path) -> tuple[int, int]:
    with Image.open(image) as im:
        width, height = im.size
        # stored on its side (a phone photo): every reader turns it upright, and labelling tools label it
        # upright, so the record has the upright size
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            width, height = height, width
    return width, height


def load_records(
    root: str | Path, split: str, class_names: list[str], use_cache: bool = True
) -> tuple[list[ImageRecord], list[LabelProblem]]:
    """Records of a split. Missing label files mean background; unreadable images are reported, not fatal.

    Image sizes come from the dataset's size cache where the file is unchanged (see ImageSizeCache). Linear in
    the images and light per file: a stat (on two cores), one read of the label file, and the label values of
    many files parsed together; an image is opened only when its size is not cached.
    """
    # here, not at the top: these modules read this one's constants
    from engine.data.file_check import TEXT_ENCODING, dataset_layout, label_paths, read_file
    from engine.data.file_stat import stat_key_strings, stat_table
    from engine.data.label_batch import parse_label_batch

    root = Path(root)
    images = [str(p) for p in split_images(root, split)]
    sizes = ImageSizeCache(root, enabled=use_cache)
    keys = stat_key_strings(stat_table(images)) if use_cache else [""] * len(images)
    kept: list[tuple[str, int, int]] = []
    order: list[int | LabelProblem] = []  # per image: its index in kept, or why it is unreadable
    for image, key in zip(images, keys, strict=True):
        size = sizes.get(image, key) if use_cache else None
        if size is None:
            try:
                size = _upright_size(Path(image))
            except (OSError, ValueError) as e:
                order.append(LabelProblem(Path(image), None, f"{UNREADABLE} ({e.__class__.__name__})"))
                continue
            if use_cache:
                sizes.put(image, key, *size)
        order.append(len(kept))
        kept.append((image, *size))
    sizes.save()
    labels = label_paths(dataset_layout(root), [k[0] for k in kept])
    texts: list[str | None] = []
    for label in labels:
        try:
            texts.append(read_file(label).decode(TEXT_ENCODING, errors="replace"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            texts.append(None)  # background
    has = [i for i, t in enumerate(texts) if t is not None]
    parsed = parse_label_batch(
        [texts[i] for i in has], [labels[i] for i in has], [kept[i][1:] for i in has], len(class_names)
    ).files()
    by_index = dict(zip(has, parsed, strict=True))
    records, problems = [], []
    for i in order:
        if isinstance(i, LabelProblem):
            problems.append(i)
            continue
        image, width, height = kept[i]
        if i in by_index:
            boxes, ids, bad = by_index[i]
            problems.extend(bad)
            records.append(ImageRecord(image, width, height, boxes, ids))
        else:
            records.append(ImageRecord(image, width, height))
    return records, problems


def write_label_file(path: Path, record: ImageRecord) -> None:
    """Write one record as a YOLO txt file (normalised cx cy w h, 6 decimals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = record.width, record.height
    with open(path, "w") as f:
        for (x1, y1, x2, y2), c in zip(record.boxes, record.labels, strict=True):
            f.write(
                f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n"
            )
