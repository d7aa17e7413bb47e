"""`detcli data check`: find what is wrong with a YOLO dataset before it wastes a week of GPU time.

Every finding names the file (and line); errors make the check fail, warnings inform. Nothing is modified.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from engine.data.file_cache import FileCache
from engine.data.file_check import (
    FileCheckSettings,
    FileResult,
    check_files,
    dataset_layout,
    label_paths,
    read_file,
)
from engine.data.file_pool import ordered_map
from engine.data.file_stat import stat_key_strings, stat_table, tree_stamps
from engine.data.file_walk import files_under
from engine.data.formats.yolo import ImageSizeCache, SplitListError, read_classes, split_rows
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
    is the same for any number of workers. Unless `use_cache` is False, results are kept in
    `<root>/.detcli-cache/`: per file (keyed by path, size and mtime of the image and its label), and the whole
    report, reused as it is while no file, split list or setting changed.
    """
    root = Path(root)
    report = CheckReport(str(root))
    add = report.findings.append
    class_error = None
    try:
        names = read_classes(root, classes)
    except ValueError as e:
        class_error, names = str(e), []
    settings = FileCheckSettings(
        len(names) or None, (int(imgsz[0]), int(imgsz[1])), float(min_px), mosaic_scale
    )
    whole = FileCache(root, "report", f"{settings.key()}|{near_dup_bits}|{imbalance_ratio!r}", use_cache)
    digest = ""
    if use_cache:
        # before anything is read: a file changed during the check makes the next run miss, never reuse
        digest = _dataset_digest(root, names, class_error)
        reused = _reusable_report(str(root), whole.get("report", digest))
        if reused is not None:
            if progress:
                progress(reused.images, reused.images)
            return reused
    images = files_under(str(root / "images"))
    if not images:
        if class_error:
            add(Finding("error", "classes", str(root), class_error))
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
    table = stat_table(images + label_paths(dataset_layout(root), images)) if use_cache else None
    # the pool starts on its first batches here; the split lists are read while its workers boot
    results, close = _file_results(root, images, table, settings, use_cache, workers, progress)
    if class_error:
        add(Finding("error", "classes", str(root), class_error))
    try:
        split_of, outside = _read_splits(root, set(images), add)
    except BaseException:
        close()  # no pool outlives a failed check
        raise
    first_of: dict[str, str] = {}  # digest -> the first image with it
    digests: list[str] = []
    hashes: list[int] = []
    hashed: list[str] = []
    class_ids: list[int] = []
    labelled = backgrounds = boxes = 0
    for img_path, res in results:
        status = res.status
        if status != "ok":
            if status == "unsupported":
                suffix = Path(img_path).suffix
                add(
                    Finding(
                        "warning", "unsupported", img_path, f"not an image format detcli reads ({suffix})"
                    )
                )
                continue
            report.images += 1
            add(Finding("error", "corrupt image", img_path, res.error))
            continue
        digest_ = res.digest
        first = first_of.setdefault(digest_, img_path)
        if first is not img_path:
            _dup(report, first, img_path, split_of, "exact duplicate")
        digests.append(digest_)
        hashes.append(res.dhash)
        hashed.append(img_path)
        if res.findings:
            for sev, kind, path, message, line in res.findings:
                add(Finding(sev, kind, path, message, line))
        if res.label == "labelled":
            labelled += 1
            boxes += res.boxes
            class_ids.extend(res.labels)
        elif res.label == "empty":
            backgrounds += 1
    report.images += len(hashed)
    report.labelled, report.backgrounds, report.boxes = labelled, backgrounds, boxes
    pairs = near_duplicate_pairs(np.array(hashes, dtype=np.uint64), near_dup_bits)
    for i, j, dist in pairs.tolist():
        if digests[i] != digests[j]:  # exact copies were reported above
            _dup(report, hashed[i], hashed[j], split_of, f"near duplicate (hash distance {dist})")
    counts = _class_counts(np.asarray(class_ids, np.int64))
    report.class_counts = {names[c] if c < len(names) else str(c): k for c, k in counts.items()}
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
    if use_cache:
        whole.put("report", digest, {"report": _report_to(report), "outside": sorted(outside.items())})
        whole.save()
    return report


def _read_splits(root: Path, listed: set[str], add) -> tuple[dict[str, str], dict[str, bool]]:
    """The split of each image the split lists name (spelt as the listing spells images), and the rows that are
    no listed image with whether each is a file; missing images and unreadable lists are reported with `add`."""
    norm = _Normaliser(root)
    split_of: dict[str, str] = {}
    outside: dict[str, bool] = {}
    for split in ("train", "val", "test"):
        csv_path = root / f"{split}.csv"
        if not csv_path.is_file():
            continue
        try:
            rows = split_rows(csv_path)
        except SplitListError as e:
            add(Finding("error", "split list", str(e.path), e.reason, e.line))
            continue
        for rel in rows:
            absolute = norm.row(rel)
            key = norm.as_listed(absolute)
            split_of[key] = split
            if key not in listed:
                exists = outside[absolute] = os.path.isfile(absolute)
                if not exists:
                    add(
                        Finding(
                            "error", "missing image", str(root / rel), f"listed in {split}.csv but missing"
                        )
                    )
    return split_of, outside


def _class_counts(ids: np.ndarray) -> dict[int, int]:
    """{class id: boxes} of the ids present, in id order."""
    if len(ids) and ids.min() >= 0:  # the usual case, in one pass
        per_class = np.bincount(ids)
        present = np.flatnonzero(per_class)
        return dict(zip(present.tolist(), per_class[present].tolist(), strict=True))
    values, per_class = np.unique(ids, return_counts=True)  # negative ids: a dataset without class names
    return dict(zip(values.tolist(), per_class.tolist(), strict=True))


def _dataset_digest(root: Path, names: list[str], class_error: str | None) -> str:
    """What the whole report depends on besides the settings: the class names, the name, size and mtime of
    every file under images/ and labels/, and the split lists' bytes. (Split rows outside images/ are checked
    apart: see `outside`.)"""
    h = hashlib.sha1()
    for part in (str(root), "\n".join(names), class_error or ""):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\0\0")
    for stamp in tree_stamps([str(root / "labels"), str(root / "images")]):
        h.update(stamp)
    for split in ("train", "val", "test"):
        try:
            h.update(read_file(root / f"{split}.csv"))
        except OSError:  # no such split list (or not a file: ignored as the check ignores it)
            h.update(b"-")
        h.update(b"\0\0")
    return h.hexdigest()


def _report_to(report: CheckReport) -> list:
    """The report as compact JSON values (`asdict` costs more than the rest of a cached re-check)."""
    findings = [[f.severity, f.kind, f.path, f.message, f.line] for f in report.findings]
    counts = [report.images, report.labelled, report.backgrounds, report.boxes]
    return [*counts, report.class_counts, findings]


def _reusable_report(root: str, saved) -> CheckReport | None:
    """The stored report if it still holds (every split row outside images/ exists as it did), else None; a
    damaged entry is no report (the cache is data anyone could have edited)."""
    if saved is None:
        return None
    try:
        if not all(os.path.isfile(p) == bool(e) for p, e in saved["outside"]):
            return None
        images, labelled, backgrounds, boxes, class_counts, findings = saved["report"]
        return CheckReport(
            root, images, labelled, backgrounds, boxes, dict(class_counts), [Finding(*f) for f in findings]
        )
    except (KeyError, TypeError, ValueError):
        return None


def _file_results(
    root: Path,
    images: list[str],
    table: np.ndarray | None,
    settings: FileCheckSettings,
    use_cache: bool,
    workers: int | None,
    progress,
) -> tuple[Iterator[tuple[str, FileResult]], Callable[[], None]]:
    """(image, result) in the order of `images`: from the cache where the files are unchanged, else checked in
    the pool (started before this returns); sizes learnt on the way go to the shared image-size cache. With
    the results comes a function that ends the pool early (the results end it when they run out).

    `table` is the `stat_table` of images + labels (None without a cache): an unchanged file costs a
    dictionary look-up, nothing is opened or decoded.
    """
    cache = FileCache(root, "check", settings.key(), enabled=use_cache)
    image_keys: list[str] = []
    keys: list[str] = []
    cached: list[FileResult | None] = [None] * len(images)
    if use_cache and table is not None:
        image_keys = stat_key_strings(table[: len(images)])
        keys = [
            f"{ik}|{lk}" for ik, lk in zip(image_keys, stat_key_strings(table[len(images) :]), strict=True)
        ]
        for i, (p, k) in enumerate(zip(images, keys, strict=True)):
            hit = cache.get(p, k)
            if hit is not None:
                cached[i] = FileResult(*hit)
    todo = [p for p, c in zip(images, cached, strict=True) if c is None]
    # sizes were stored with the results a hit comes from: with no miss there is nothing to add
    sizes = ImageSizeCache(root, enabled=use_cache and (bool(todo) or not ImageSizeCache.exists(root)))
    done_before = len(images) - len(todo)
    step = (lambda d, t: progress(done_before + d, len(images))) if progress else None
    fresh = ordered_map(partial(check_files, settings, dataset_layout(root)), todo, workers, step)

    def merged() -> Iterator[tuple[str, FileResult]]:
        if progress and not todo:
            progress(len(images), len(images))
        checked = iter(fresh)
        for i, (p, res) in enumerate(zip(images, cached, strict=True)):
            if res is None:
                res = next(checked)
                if use_cache:
                    cache.put(p, keys[i], res)
            if sizes.enabled and res.status == "ok":
                sizes.put(p, image_keys[i], res.width, res.height)
            yield p, res
        cache.save()
        sizes.save()

    return merged(), fresh.close


class _Normaliser:
    """One spelling per file, to match split lists to the listing: absolute, with no '.' or '..' parts.

    (`Path.resolve` would cost a syscall per folder level of every path.) Listed images share one folder, so
    theirs is normalised once.
    """

    def __init__(self, root: Path):
        self._root = os.path.abspath(root)
        self._prefix = str(root / "images") + os.sep
        self._images = os.path.join(self._root, "images") + os.sep

    def as_listed(self, path: str) -> str:
        """A normalised path spelt as the listing spells it if it is under images/ (so listed images and split
        rows compare as plain strings, with no per-image work)."""
        return self._prefix + path[len(self._images) :] if path.startswith(self._images) else path

    def row(self, rel: str) -> str:
        """The spelling of a split CSV's row (a path relative to the dataset root, or absolute)."""
        if "/." in rel or "//" in rel or rel[0] in "/." or rel[-1] == "/":
            return os.path.normpath(os.path.join(self._root, rel))
        return self._root + os.sep + rel  # no part to normalise: what normpath would give, at a fraction


def _dup(report: CheckReport, a: str, b: str, split_of: dict[str, str], what: str) -> None:
    sa, sb = split_of.get(a), split_of.get(b)
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
