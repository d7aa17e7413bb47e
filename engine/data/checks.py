"""`detcli data check`: find what is wrong with a YOLO dataset before it wastes a week of GPU time.

Every finding names the file (and line); errors make the check fail, warnings inform. Nothing is modified.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from engine.data.file_cache import FileCache, stat_keys
from engine.data.file_check import FileCheckSettings, FileResult, check_files
from engine.data.file_pool import ordered_map
from engine.data.file_walk import files_under
from engine.data.formats.yolo import ImageSizeCache, read_classes, split_rows
from engine.data.near_dup import near_duplicate_pairs


@dataclass
class Finding:
    severity: str  # "error" | "warning" | "info"
    kind: str
    path: str
    message: str
    line: int | None = None

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class CheckReport:
    root: str
    images: int = 0
    labelled: int = 0
    backgrounds: int = 0
    boxes: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_errors"], d["n_warnings"] = len(self.errors), len(self.warnings)
        return d


def check_dataset(
    root: str | Path,
    classes: list[str] | None = None,
    imgsz: tuple[int, int] = (640, 640),
    min_px: float = 4.0,
    mosaic_scale: float = 1.0,
    near_dup_bits: int = 4,
    imbalance_ratio: float = 10.0,
    progress=None,
    use_cache: bool = True,
    workers: int | None = None,
) -> CheckReport:
    """Run every check on the YOLO dataset at `root` (see the module docstring).

    Files are checked in a process pool (`workers`, default: the usable cores) in a fixed order, so the report
    is the same for any number of workers. Per-file results are kept in `<root>/.detcli-cache/` (keyed by
    path, size and mtime of the image and its label) unless `use_cache` is False.
    """
    root = Path(root)
    report = CheckReport(str(root))
    add = report.findings.append
    try:
        names = read_classes(root, classes)
    except ValueError as e:
        add(Finding("error", "classes", str(root), str(e)))
        names = []
    images = files_under(str(root / "images"))
    if not images:
        add(
            Finding(
                "error",
                "layout",
                str(root),
                "no images/ folder with images (expected images/, labels/, "
                "classes.txt; see docs/data-layout.md)",
            )
        )
        return report
    norm = _Normaliser(root)
    listed = set(map(norm.image, images))
    split_of: dict[str, str] = {}
    for split in ("train", "val", "test"):
        if (root / f"{split}.csv").is_file():
            for rel in split_rows(root / f"{split}.csv"):
                key = norm.row(rel)
                split_of[key] = split
                if key not in listed and not os.path.isfile(key):
                    add(
                        Finding(
                            "error", "missing image", str(root / rel), f"listed in {split}.csv but missing"
                        )
                    )
    settings = FileCheckSettings(
        len(names) or None, (int(imgsz[0]), int(imgsz[1])), float(min_px), mosaic_scale
    )
    counts: Counter = Counter()
    md5s: dict[str, str] = {}
    digests: list[str] = []
    hashes: list[int] = []
    hashed: list[str] = []
    for img_path, res in _file_results(root, images, settings, use_cache, workers, progress):
        if res.status == "unsupported":
            add(
                Finding(
                    "warning",
                    "unsupported",
                    img_path,
                    f"not an image format detcli reads ({Path(img_path).suffix})",
                )
            )
            continue
        report.images += 1
        if res.status == "corrupt":
            add(Finding("error", "corrupt image", img_path, res.error))
            continue
        if res.md5 in md5s:
            _dup(report, md5s[res.md5], img_path, split_of, norm, "exact duplicate")
        else:
            md5s[res.md5] = img_path
        digests.append(res.md5)
        hashes.append(res.dhash)
        hashed.append(img_path)
        for sev, kind, path, message, line in res.findings:
            add(Finding(sev, kind, path, message, line))
        if res.label == "empty":
            report.backgrounds += 1
        elif res.label == "labelled":
            report.labelled += 1
            report.boxes += res.boxes
            counts.update(res.labels)
    pairs = near_duplicate_pairs(np.array(hashes, dtype=np.uint64), near_dup_bits)
    for i, j, dist in pairs.tolist():
        if digests[i] != digests[j]:  # exact copies were reported above
            _dup(report, hashed[i], hashed[j], split_of, norm, f"near duplicate (hash distance {dist})")
    report.class_counts = {names[c] if c < len(names) else str(c): k for c, k in sorted(counts.items())}
    for c, name in enumerate(names):
        if counts.get(c, 0) == 0:
            add(Finding("warning", "imbalance", str(root), f"class '{name}' has no boxes"))
    present = [k for k in counts.values() if k]
    if len(present) > 1 and max(present) / min(present) > imbalance_ratio:
        add(
            Finding(
                "warning",
                "imbalance",
                str(root),
                f"largest class has {max(present) / min(present):.0f}x the "
                "boxes of the smallest: consider oversampling or more data",
            )
        )
    return report


def _file_results(
    root: Path,
    images: list[str],
    settings: FileCheckSettings,
    use_cache: bool,
    workers: int | None,
    progress,
) -> Iterator[tuple[str, FileResult]]:
    """(image, result) in the order of `images`: from the cache where the files are unchanged, else checked in
    the pool; sizes learnt on the way go to the shared image-size cache.

    An unchanged file costs two stats (image, label) and a dictionary look-up: nothing is opened or decoded.
    """
    labels = _label_paths(root, images)
    cache = FileCache(root, "check", settings.key(), enabled=use_cache)
    keys: list[tuple[str, str]] = []
    cached: list[FileResult | None] = [None] * len(images)
    if use_cache:
        keys = list(zip(stat_keys(images), stat_keys(labels), strict=True))
        for i, (p, (ik, lk)) in enumerate(zip(images, keys, strict=True)):
            hit = cache.get(p, f"{ik}|{lk}")
            if hit is not None:
                cached[i] = FileResult(*hit)
    todo = [(p, lb) for p, lb, c in zip(images, labels, cached, strict=True) if c is None]
    # sizes were stored with the results a hit comes from: with no miss there is nothing to add
    sizes = ImageSizeCache(root, enabled=use_cache and (bool(todo) or not ImageSizeCache.exists(root)))
    done_before = len(images) - len(todo)
    step = (lambda d, t: progress(done_before + d, len(images))) if progress else None
    fresh = ordered_map(partial(check_files, settings), todo, workers, step)
    if progress and not todo:
        progress(len(images), len(images))
    for i, (p, res) in enumerate(zip(images, cached, strict=True)):
        if res is None:
            res = next(fresh)
            if use_cache:
                cache.put(p, f"{keys[i][0]}|{keys[i][1]}", res)
        if sizes.enabled and res.status == "ok":
            sizes.put_keyed(p, keys[i][0], res.width, res.height)
        yield p, res
    cache.save()
    sizes.save()


def _label_paths(root: Path, images: list[str]) -> list[str]:
    """`label_path_for` of every image (all under `root`/images), by string operations."""
    prefix, labels_dir = str(root / "images") + os.sep, str(root / "labels") + os.sep
    out = []
    for p in images:
        rel = p[len(prefix) :] if p.startswith(prefix) else os.path.basename(p)
        dot, name_at = rel.rfind("."), rel.rfind(os.sep) + 1
        # as Path.with_suffix: a dot that starts the name, or ends it, is not a suffix
        stem = rel[:dot] if name_at < dot < len(rel) - 1 else rel
        out.append(labels_dir + stem + ".txt")
    return out


class _Normaliser:
    """One spelling per file, to match split lists to the listing: absolute, with no '.' or '..' parts.

    (`Path.resolve` would cost a syscall per folder level of every path.) Listed images share one folder, so
    theirs is normalised once.
    """

    def __init__(self, root: Path):
        self._root = os.path.abspath(root)
        self._prefix = str(root / "images") + os.sep
        self._images = os.path.join(self._root, "images") + os.sep

    def image(self, path: str) -> str:
        """The spelling of a listed image (a path under the dataset's images/)."""
        return self._images + path[len(self._prefix) :]

    def row(self, rel: str) -> str:
        """The spelling of a split CSV's row (a path relative to the dataset root, or absolute)."""
        if "/." in rel or "//" in rel or rel[0] in "/." or rel[-1] == "/":
            return os.path.normpath(os.path.join(self._root, rel))
        return self._root + os.sep + rel  # no part to normalise: what normpath would give, at a fraction


def _dup(report: CheckReport, a: str, b: str, split_of: dict[str, str], norm: _Normaliser, what: str) -> None:
    sa, sb = split_of.get(norm.image(a)), split_of.get(norm.image(b))
    if sa and sb and sa != sb:
        report.findings.append(
            Finding(
                "error",
                "leakage",
                b,
                f"{what} of {a} across splits ({sa} vs {sb}): the model is validated on what it trained on",
            )
        )
    else:
        report.findings.append(Finding("warning", "duplicate image", b, f"{what} of {a}"))
