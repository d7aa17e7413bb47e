"""Evaluate any model (a run, weights, or an export) on a dataset split, with pictures of what it gets wrong."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2

from engine.config import EvalConfig, RunConfig
from engine.data.dataset import build_dataset
from engine.data.decode import read_image
from engine.data.records import ImageRecord
from engine.infer.processing import Detections
from engine.metrics import DetectionEvaluator, EvalResult
from engine.metrics.gallery import draw_detections, grid
from engine.models.checkpoint import read_checkpoint
from engine.runs import RunStore

log = logging.getLogger(__name__)


@dataclass
class ResolvedTarget:
    path: Path  # the model file
    backend: str
    config: RunConfig
    run: dict | None
    out_dir: Path


def resolve_target(target: str, store: RunStore) -> ResolvedTarget:
    """A run name (its best.pt), or a .pt/.onnx/.xml/.engine file (its run found through the metadata)."""
    from engine.infer.predictor import backend_for

    path = Path(target)
    if not path.exists():
        run = store.resolve_run(target)  # raises RunNotFound with suggestions
        best = Path(run["dir"]) / "best.pt"
        if not best.is_file():
            raise FileNotFoundError(f"run '{run['name']}' has no best.pt yet (it has not finished an epoch)")
        return ResolvedTarget(best, "torch", RunConfig.model_validate(run["config"]), run, Path(run["dir"]))
    backend = backend_for(path)
    if backend == "torch":
        ck = read_checkpoint(path)
        cfg_dict, run_name = ck.get("config"), ck.get("run_name")
    else:
        from engine.export.metadata import read_metadata

        meta = read_metadata(path)
        run_name, cfg_dict = meta.get("run_name"), None
    run = store.get_run(run_name) if run_name else None
    if cfg_dict is None and run is not None:
        cfg_dict = run["config"]
    cfg = RunConfig.model_validate(cfg_dict) if cfg_dict else RunConfig()
    return ResolvedTarget(path, backend, cfg, run, Path(run["dir"]) if run else path.parent)


def evaluate_target(
    resolved: ResolvedTarget,
    cfg: RunConfig,
    split: str,
    backend: str | None = None,
    save_vis: int = 0,
    vis_dir: Path | None = None,
) -> EvalResult:
    """Run the model over the split through the shared Predictor and score it."""
    from engine.infer import Predictor

    predictor = Predictor.from_path(resolved.path, backend=backend, conf=0.0)
    dataset = build_dataset(cfg, split, "val")
    # unreadable files are reported and left out of the score, as the data loaders leave them out of training
    files = predictor.predict_files([rec.path for rec in dataset.records], conf=0.0)
    detections = (item.detections for item in files)
    result, kept = score_detections(
        dataset.records, detections, dataset.class_names, cfg.eval, dataset.unlisted, keep=bool(save_vis)
    )
    if save_vis and vis_dir is not None:
        save_visualisations(result, kept, dataset.class_names, cfg.eval.conf, vis_dir, save_vis)
    return result


def score_detections(
    records: list[ImageRecord],
    detections: Iterable[Detections | None],
    class_names: list[str],
    thresholds: EvalConfig,
    unlisted: list[str] | None = None,
    keep: bool = False,
) -> tuple[EvalResult, list]:
    """Score one Detections per record (None: the image could not be read, so it is named, not scored) with the
    run's eval thresholds (conf, iou, max_det). The detections may come from here or from a target device
    (`bench --host --accuracy`). With `keep`, also returns the (record, detections) pairs for the gallery."""
    max_det = thresholds.max_det
    ev = DetectionEvaluator(class_names, conf=thresholds.conf, iou=thresholds.iou, max_det=max_det)
    kept: list = []
    skipped = list(unlisted or [])
    for rec, det in zip(records, detections, strict=True):
        if det is None:
            log.warning("skipping unreadable image %s (not scored)", rec.path)
            skipped.append(str(rec.path))
            continue
        ev.add(
            str(rec.path),
            det.boxes[:max_det],
            det.scores[:max_det],
            det.labels[:max_det],
            rec.boxes,
            rec.labels,
            ignore_boxes=rec.ignore,
            image_size=(rec.height, rec.width),
        )
        if keep:
            kept.append((rec, det))
    result = ev.compute()
    result.skipped = skipped
    return result, kept


def save_visualisations(
    result: EvalResult, items: list, class_names: list[str], conf: float, out_dir: Path, n: int
) -> list[Path]:
    """predictions.png (the first n images) and errors.png (the n images with the most FP + FN)."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def draw(rec, det, title=""):
        keep = det.scores >= conf
        img = read_image(rec.path)
        return draw_detections(
            img,
            gt=(rec.boxes, rec.labels),
            pred=(det.boxes[keep], det.scores[keep], det.labels[keep]),
            class_names=class_names,
            title=title,
        )

    paths = []
    first = [draw(rec, det) for rec, det in items[:n]]
    cv2.imwrite(str(out_dir / "predictions.png"), grid(first))
    paths.append(out_dir / "predictions.png")
    errors = {e["image_id"]: e for e in result.per_image}
    ranked = sorted(items, key=lambda it: -(errors[str(it[0].path)]["fp"] + errors[str(it[0].path)]["fn"]))
    worst = [
        draw(rec, det, f"FP {errors[str(rec.path)]['fp']} FN {errors[str(rec.path)]['fn']}")
        for rec, det in ranked[:n]
        if errors[str(rec.path)]["fp"] + errors[str(rec.path)]["fn"] > 0
    ]
    if worst:
        cv2.imwrite(str(out_dir / "errors.png"), grid(worst))
        paths.append(out_dir / "errors.png")
    return paths
