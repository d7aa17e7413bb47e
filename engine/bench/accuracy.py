"""`bench --accuracy` on another machine: the val split's images are copied to the target and its labels travel
in the job (so a bundle's results.json can be scored wherever it is imported); the target sends back its
detections per image, and they are scored here by the same `score_detections` as local eval and bench."""

from __future__ import annotations

from pathlib import Path

from engine.config import EvalConfig, RunConfig
from engine.data.records import ImageRecord
from engine.evaluation import score_detections
from engine.infer.processing import Detections
from engine.metrics import EvalResult


def _record_json(rec: ImageRecord) -> dict:
    return {
        "path": str(rec.path),
        "width": rec.width,
        "height": rec.height,
        "boxes": rec.boxes.tolist(),
        "labels": rec.labels.tolist(),
        "ignore": rec.ignore.tolist(),
    }


def accuracy_payload(cfg: RunConfig, split: str = "val") -> tuple[dict, list[Path]]:
    """What the job's meta carries to score the split later (labels, class names, thresholds), and the image
    files to copy, in the same order."""
    from engine.data.dataset import build_dataset

    dataset = build_dataset(cfg, split, "val")
    meta = {
        "split": split,
        "class_names": list(dataset.class_names),
        "eval": cfg.eval.model_dump(mode="json"),
        "unlisted": list(dataset.unlisted),
        "records": [_record_json(r) for r in dataset.records],
    }
    return meta, [r.path for r in dataset.records]


def score_remote(payload: dict, detections: list[dict | None]) -> EvalResult:
    """Score one backend's detections from the target (one entry per record, None: unreadable there)."""
    records = [ImageRecord(**r) for r in payload["records"]]
    if len(detections) != len(records):
        raise ValueError(
            f"the target returned detections for {len(detections)} images, the job sent {len(records)}"
        )
    dets = (None if d is None else Detections.from_json(d) for d in detections)
    thresholds = EvalConfig.model_validate(payload["eval"])
    result, _ = score_detections(records, dets, payload["class_names"], thresholds, payload["unlisted"])
    return result
