"""Pascal VOC xml (read)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from engine.data.formats.yolo import LabelProblem
from engine.data.records import ImageRecord


def read_voc(
    annotations_dir: str | Path, images_dir: str | Path, names: list[str] | None = None
) -> tuple[list[ImageRecord], list[str], list[LabelProblem]]:
    """Records from a folder of VOC xml files; class names in order of first appearance unless given."""
    names = list(names or [])
    records, problems = [], []
    for xml in sorted(Path(annotations_dir).glob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as e:
            problems.append(LabelProblem(xml, e.position[0], f"malformed XML ({e})"))
            continue
        fname = root.findtext("filename") or xml.with_suffix(".jpg").name
        path = Path(images_dir) / fname
        size = root.find("size")
        w, h = int(float(size.findtext("width"))), int(float(size.findtext("height")))
        boxes, labels = [], []
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            if x2 <= x1 or y2 <= y1:
                problems.append(
                    LabelProblem(xml, None, f"zero-area box for '{name}' ({x1}, {y1}, {x2}, {y2})")
                )
                continue
            if name not in names:
                names.append(name)
            boxes.append([x1, y1, x2, y2])
            labels.append(names.index(name))
        if not path.is_file():
            problems.append(LabelProblem(path, None, f"image named by {xml.name} is missing"))
            continue
        records.append(ImageRecord(path, w, h, np.asarray(boxes, np.float32).reshape(-1, 4), labels))
    return records, names, problems
