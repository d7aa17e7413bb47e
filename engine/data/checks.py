"""`detcli data check`: find what is wrong with a YOLO dataset before it wastes a week of GPU time.

Every finding names the file (and line); errors make the check fail, warnings inform. Nothing is modified.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from operator import itemgetter
from pathlib import Path

import numpy as np

from engine.data.file_cache import FileCache
from engine.data.file_check import (
    LABEL_STATES,
    STATUSES,
    BatchResult,
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

OK, CORRUPT = STATUSES.index("ok"), STATUSES.index("corrupt")
EMPTY, LABELLED = LABEL_STATES.index("empty"), LABEL_STATES.index("labelled")
CACHE_RUN = 1024  # results from the cache go on as batches of this many


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
    noted: list[tuple[int, Finding]] = []  # (position in images, finding) of what the images' checks found
    ok_parts: list[np.ndarray] = []  # positions of the images that were read
    hash_parts: list[np.ndarray] = []
    size_parts: list[np.ndarray] = []
    id_parts: list[np.ndarray] = []
    at = corrupt = 0
    for batch in results:
        for i, error, findings in batch.notes:
            img_path = images[at + i]
            status = STATUSES[batch.status[i]]
            if status == "unsupported":
                suffix = Path(img_path).suffix
                message = f"not an image format detcli reads ({suffix})"
                noted.append((at + i, Finding("warning", "unsupported", img_path, message)))
            elif status == "corrupt":
                noted.append((at + i, Finding("error", "corrupt image", img_path, error)))
            else:
                noted.extend((at + i, Finding(*f)) for f in findings)
        ok = batch.status == OK
        ok_parts.append(np.flatnonzero(ok) + at)
        hash_parts.append(batch.dhash[ok])
        size_parts.append(batch.size[ok])
        id_parts.append(batch.labels)
        corrupt += int(np.count_nonzero(batch.status == CORRUPT))
        report.labelled += int(np.count_nonzero(batch.label == LABELLED))
        report.backgrounds += int(np.count_nonzero(batch.label == EMPTY))
        report.boxes += int(batch.boxes.sum())
        at += len(batch.status)
    ok_at = np.concatenate(ok_parts or [np.zeros(0, np.int64)])  # (an array: 8 bytes an image, at any scale)
    hashes = np.concatenate(hash_parts or [np.zeros(0, np.uint64)])
    report.images = corrupt + len(ok_at)
    copy_of = _exact_copies(images, ok_at, hashes, np.concatenate(size_parts or [np.zeros(0)]))
    copies = [
        (int(ok_at[i]), _dup(images[ok_at[first]], images[ok_at[i]], split_of, "exact duplicate"))
        for i, first in sorted(copy_of.items())
    ]
    # an image's exact-copy finding before what its own check found, as the images come
    report.findings.extend(f for _, f in heapq.merge(copies, noted, key=itemgetter(0)))
    pairs = near_duplicate_pairs(hashes, near_dup_bits)
    first, second, dists = pairs.T.tolist() if len(pairs) else ([], [], [])
    for i, j, a, b, dist in zip(
        first, second, ok_at[first].tolist(), ok_at[second].tolist(), dists, strict=True
    ):
        if copy_of and copy_of.get(i, i) == copy_of.get(j, j):  # exact copies were reported above
            continue
        add(_dup(images[a], images[b], split_of, f"near duplicate (hash distance {dist})"))
    class_ids = np.concatenate(id_parts or [np.zeros(0, np.int64)])
    counts = _class_counts(class_ids)
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


def _exact_copies(images: list[str], at: np.ndarray, hashes: np.ndarray, sizes: np.ndarray) -> dict[int, int]:
    """{i: the first with its bytes} of every image i whose bytes equal an earlier one's, of the images read
    (image i is `images[at[i]]`, with difference hash `hashes[i]` and `sizes[i]` bytes).

    Exact copies share size and difference hash, so only images that share both with another (by a mix of the
    two: a rare collision costs a comparison, never a finding) are read again and hashed (SHA-1): a check does
    not hash every file to find the few it repeats.
    """
    if len(hashes) < 2:
        return {}
    key = hashes ^ (sizes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    _, group, count = np.unique(key, return_inverse=True, return_counts=True)
    first_of: dict[bytes, int] = {}
    copy_of: dict[int, int] = {}
    for i in np.flatnonzero(count[group] > 1).tolist():  # in image order
        first = first_of.setdefault(_bytes_digest(images[at[i]], i), i)
        if first != i:
            copy_of[i] = first
    return copy_of


def _bytes_digest(path: str, index: int) -> bytes:
    """SHA-1 of a file's bytes; one that can no longer be read (changed under the check) equals no other."""
    try:
        return hashlib.sha1(read_file(path)).digest()
    except OSError:
        return b"unreadable %d" % index


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
        keys = norm.listed_rows(rows)
        if keys is not None and listed.issuperset(keys):  # the usual list: listed images alone, plainly spelt
            split_of.update(dict.fromkeys(keys, split))
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
) -> tuple[Iterator[BatchResult], Callable[[], None]]:
    """The results of `images`, a batch after another in their order: from the cache where the files are
    unchanged, else checked in the pool (started before this returns); sizes learnt on the way go to the shared
    image-size cache. With the results comes a function that ends the pool early (the results end it when they
    run out).

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
            cached[i] = _cached_result(cache.get(p, k))
    todo = [p for p, c in zip(images, cached, strict=True) if c is None]
    # sizes were stored with the results a hit comes from: with no miss there is nothing to add
    sizes = ImageSizeCache(root, enabled=use_cache and (bool(todo) or not ImageSizeCache.exists(root)))
    done_before = len(images) - len(todo)
    step = (lambda d, t: progress(done_before + d, len(images))) if progress else None
    fresh = ordered_map(partial(check_files, settings, dataset_layout(root)), todo, workers, step)

    def keep(i: int, res: FileResult, checked: bool = True) -> None:
        if checked:  # (a hit is kept by the cache as it is)
            cache.put(images[i], keys[i], res)
        if sizes.enabled and res.status == "ok":
            sizes.put(images[i], image_keys[i], res.width, res.height)

    def merged() -> Iterator[BatchResult]:
        if progress and not todo:
            progress(len(images), len(images))
        if not use_cache:  # every file is checked, and nothing is kept
            yield from fresh.batches()
            return
        if len(todo) == len(images):  # nothing cached (a first check): the batches go on as they come
            at = 0
            for batch in fresh.batches():
                for i, res in enumerate(batch.files(), start=at):
                    keep(i, res)
                at += len(batch.status)
                yield batch
        else:  # cached and checked files interleave: regrouped into batches
            checked_now = (res for batch in fresh.batches() for res in batch.files())
            run: list[FileResult] = []
            for i, hit in enumerate(cached):
                res = next(checked_now) if hit is None else hit
                keep(i, res, hit is None)
                run.append(res)
                if len(run) == CACHE_RUN:
                    yield BatchResult.of(run)
                    run = []
            if run:
                yield BatchResult.of(run)
        cache.save()
        sizes.save()

    return merged(), fresh.close


def _cached_result(hit) -> FileResult | None:
    """A stored per-file result, or None where there is none or it is damaged (the image is checked again: the
    cache is a file anyone could have edited)."""
    if not isinstance(hit, list) or len(hit) != len(FileResult._fields):
        return None
    res = FileResult(*hit)
    ints = (res.size, res.width, res.height, res.boxes)
    good = (
        res.status in STATUSES
        and res.label in LABEL_STATES
        and (res.status == "ok") == isinstance(res.dhash, int)
        and (res.dhash is None or 0 <= res.dhash < 1 << 64)
        and all(isinstance(v, int) for v in ints)
        and isinstance(res.findings, list)
        and all(isinstance(f, list) and len(f) == 5 for f in res.findings)
        and isinstance(res.labels, list)
        and len(res.labels) == res.boxes
        and all(isinstance(c, int) and -(1 << 63) <= c < 1 << 63 for c in res.labels)
    )
    return res if good else None


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

    def listed_rows(self, rows: list[str]) -> list[str] | None:
        """`as_listed(row(r))` of every row if all are plain paths under images/ ('images/a/b.jpg': no '.', '..'
        or empty part), else None: string searches over all rows at once, not a normalisation per row."""
        if os.sep != "/" or not rows:
            return None
        text = "\n" + "\n".join(rows) + "\n"
        # every line starts a row (no row holds a line end), and every row starts with images/
        if not text.count("\n") == text.count("\nimages/") + 1 == len(rows) + 1:
            return None
        if any(p in text for p in ("/.", "//", "/\n")):
            return None
        cut = len("images/")
        return [self._prefix + r[cut:] for r in rows]

    def row(self, rel: str) -> str:
        """The spelling of a split CSV's row (a path relative to the dataset root, or absolute)."""
        if "/." in rel or "//" in rel or rel[0] in "/." or rel[-1] == "/":
            return os.path.normpath(os.path.join(self._root, rel))
        return self._root + os.sep + rel  # no part to normalise: what normpath would give, at a fraction


def _dup(a: str, b: str, split_of: dict[str, str], what: str) -> Finding:
    """The finding for image `b` that repeats image `a`: leakage across splits, else a duplicate."""
    sa, sb = split_of.get(a), split_of.get(b)
    if sa and sb and sa != sb:
        return Finding(
            "error",
            "leakage",
            b,
            f"{what} of {a} across splits ({sa} vs {sb}): the model is validated on what it trained on",
        )
    return Finding("warning", "duplicate image", b, f"{what} of {a}")
