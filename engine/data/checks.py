"""`detcli data check`: find what is wrong with a YOLO dataset before it wastes a week of GPU time.

Every finding names the file (and line); errors make the check fail, warnings inform. Nothing is modified.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.data.formats.yolo import (
    IMAGE_SUFFIXES,
    label_path_for,
    parse_label_file,
    read_classes,
    split_images,
)


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


def dhash(image: np.ndarray, size: int = 8) -> int:
    """64-bit difference hash: robust to resizing/re-encoding, so near-duplicate frames collide."""
    g = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _decode(path: Path) -> tuple[np.ndarray | None, str | None]:
    data = path.read_bytes()
    if path.suffix.lower() in (".jpg", ".jpeg") and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None, "truncated JPEG (no end-of-image marker): re-export or remove it"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, "cannot be decoded (corrupt or not an image)"
    return img, None


def check_dataset(
    root: str | Path,
    classes: list[str] | None = None,
    imgsz: tuple[int, int] = (640, 640),
    min_px: float = 4.0,
    mosaic_scale: float = 1.0,
    near_dup_bits: int = 4,
    imbalance_ratio: float = 10.0,
    progress=None,
) -> CheckReport:
    """Run every check on the YOLO dataset at `root` (see the module docstring)."""
    root = Path(root)
    report = CheckReport(str(root))
    add = report.findings.append
    try:
        names = read_classes(root, classes)
    except ValueError as e:
        add(Finding("error", "classes", str(root), str(e)))
        names = []
    images = (
        sorted(p for p in (root / "images").rglob("*") if p.is_file()) if (root / "images").is_dir() else []
    )
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
    split_of: dict[Path, str] = {}
    for split in ("train", "val", "test"):
        if (root / f"{split}.csv").is_file():
            for p in split_images(root, f"{split}.csv"):
                split_of[p.resolve()] = split
                if not p.is_file():
                    add(Finding("error", "missing image", str(p), f"listed in {split}.csv but missing"))
    counts: Counter = Counter()
    md5s: dict[str, Path] = {}
    digest_of: dict[Path, str] = {}
    hashes: list[tuple[int, Path]] = []
    scale = min(imgsz[0], imgsz[1]) * mosaic_scale
    for n, img_path in enumerate(images):
        if progress:
            progress(n + 1, len(images))
        if img_path.suffix.lower() not in IMAGE_SUFFIXES:
            add(
                Finding(
                    "warning",
                    "unsupported",
                    str(img_path),
                    f"not an image format detcli reads ({img_path.suffix})",
                )
            )
            continue
        report.images += 1
        img, err = _decode(img_path)
        if err:
            add(Finding("error", "corrupt image", str(img_path), err))
            continue
        h, w = img.shape[:2]
        digest = hashlib.md5(img_path.read_bytes()).hexdigest()
        digest_of[img_path] = digest
        if digest in md5s:
            _dup(report, md5s[digest], img_path, split_of, "exact duplicate")
        else:
            md5s[digest] = img_path
        hashes.append((dhash(img), img_path))
        label = label_path_for(root, img_path)
        if not label.is_file():
            add(
                Finding(
                    "warning",
                    "missing label",
                    str(label),
                    "no label file: treated as background (create an empty file to mark it as such)",
                )
            )
            continue
        text = label.read_text(errors="replace")
        if not text.strip():
            report.backgrounds += 1
            continue
        report.labelled += 1
        boxes, labels, problems = parse_label_file(label, w, h, len(names) or None)
        for p in problems:
            add(Finding("error", "bad label", str(p.path), f"{p.message}: {p.text!r}", p.line))
        rows = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for row, k in Counter(rows).items():
            if k > 1:
                add(
                    Finding(
                        "warning",
                        "duplicate row",
                        str(label),
                        f"row repeated {k} times: {row!r}",
                        rows.index(row) + 1,
                    )
                )
        report.boxes += len(boxes)
        counts.update(labels.tolist())
        if len(boxes):
            side = np.minimum(
                (boxes[:, 2] - boxes[:, 0]) * scale / w, (boxes[:, 3] - boxes[:, 1]) * scale / h
            )
            tiny = int((side < min_px).sum())
            if tiny:
                add(
                    Finding(
                        "warning",
                        "too small",
                        str(label),
                        f"{tiny} object(s) under {min_px:g} px at input {imgsz[0]}x{imgsz[1]}"
                        + (f" after mosaic scale {mosaic_scale:g}" if mosaic_scale != 1 else ""),
                    )
                )
    for i, (ha, pa) in enumerate(hashes):  # near duplicates: O(n^2) popcount, fine up to ~10k images
        for hb, pb in hashes[i + 1 :]:
            # exact copies were reported above
            if bin(ha ^ hb).count("1") <= near_dup_bits and digest_of[pa] != digest_of[pb]:
                _dup(report, pa, pb, split_of, f"near duplicate (hash distance {bin(ha ^ hb).count('1')})")
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


def _dup(report: CheckReport, a: Path, b: Path, split_of: dict, what: str) -> None:
    sa, sb = split_of.get(a.resolve()), split_of.get(b.resolve())
    if sa and sb and sa != sb:
        report.findings.append(
            Finding(
                "error",
                "leakage",
                str(b),
                f"{what} of {a} across splits ({sa} vs {sb}): the model is validated on what it trained on",
            )
        )
    else:
        report.findings.append(Finding("warning", "duplicate image", str(b), f"{what} of {a}"))
