"""COCO json: any category ids, remapped to contiguous 0..N-1 with the mapping kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.data.formats.yolo import DatasetError, LabelProblem
from engine.data.records import ImageRecord


def read_coco(
    json_path: str | Path, images_dir: str | Path | None = None
) -> tuple[list[ImageRecord], list[str], dict[int, int], list[LabelProblem]]:
    """Records, class names, {coco category id: contiguous id}, and problems (missing images, bad boxes)."""
    json_path = Path(json_path)
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{json_path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not {"images", "annotations", "categories"} <= set(data):
        raise DatasetError(f"{json_path}: a COCO file needs 'images', 'annotations' and 'categories'")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    mapping = {c["id"]: i for i, c in enumerate(cats)}
    names = [c["name"] for c in cats]
    base = Path(images_dir) if images_dir else json_path.parent
    by_image: dict = {im["id"]: ([], []) for im in data["images"]}
    problems: list[LabelProblem] = []
    for n, a in enumerate(data["annotations"]):
        x, y, w, h = a["bbox"]
        if w <= 0 or h <= 0:
            problems.append(
                LabelProblem(json_path, None, f"annotation #{n} (id {a.get('id')}) has zero area")
            )
            continue
        if a["category_id"] not in mapping:
            problems.append(
                LabelProblem(json_path, None, f"annotation #{n} has unknown category {a['category_id']}")
            )
            continue
        by_image.setdefault(a["image_id"], ([], []))
        by_image[a["image_id"]][0].append([x, y, x + w, y + h])
        by_image[a["image_id"]][1].append(mapping[a["category_id"]])
    records = []
    for im in data["images"]:
        path = base / im["file_name"]
        if not path.is_file():
            problems.append(LabelProblem(path, None, f"image listed in {json_path.name} is missing"))
            continue
        boxes, labels = by_image.get(im["id"], ([], []))
        records.append(
            ImageRecord(
                path,
                im["width"],
                im["height"],
                np.asarray(boxes, np.float32).reshape(-1, 4),
                np.asarray(labels, np.int64),
            )
        )
    return records, names, mapping, problems


def write_coco(records: list[ImageRecord], names: list[str], json_path: str | Path, root: str | Path) -> Path:
    """Write records as COCO json (category ids 1..N, file names relative to `root`)."""
    root = Path(root)
    out = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
    }
    ann = 1
    for i, r in enumerate(records, start=1):
        rel = Path(r.path).relative_to(root) if Path(r.path).is_relative_to(root) else Path(r.path).name
        out["images"].append({"id": i, "file_name": str(rel), "width": r.width, "height": r.height})
        for (x1, y1, x2, y2), c in zip(r.boxes.tolist(), r.labels.tolist(), strict=True):
            out["annotations"].append(
                {
                    "id": ann,
                    "image_id": i,
                    "category_id": c + 1,
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                }
            )
            ann += 1
    Path(json_path).write_text(json.dumps(out))
    return Path(json_path)
