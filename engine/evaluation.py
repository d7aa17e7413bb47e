"""Evaluate any model (a run, weights, or an export) on a dataset split, with pictures of what it gets wrong."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2

from engine.config import EvalConfig, RunConfig
from engine.data.dataset import build_dataset
from engine.data.decode import read_image
from engine.data.records import ImageRecord
from engine.errors import DetcliError, EvaluationFailed, UsageProblem
from engine.infer.processing import Detections
from engine.metrics import DetectionEvaluator, EvalResult
from engine.metrics.gallery import draw_detections, grid
from engine.runs import RunStore
from engine.runs.targets import ResolvedTarget, resolve_target

log = logging.getLogger(__name__)


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


def evaluate_model(
    target: str | Path,
    split: str = "val",
    runs_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    backend: str | None = None,
    save_vis: int = 0,
    out_dir: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> EvalResult:
    """Score a run (its best.pt), a checkpoint or an export on a split of its dataset (or `data_root`).

    Pictures (with save_vis) go to `out_dir`, by default the run folder's `eval-<split>/`; a model that belongs
    to a run gets the scores recorded in its history (an `eval` artifact and an event)."""
    store = RunStore.open(runs_dir)
    resolved = resolve_target(target, store)
    cfg: RunConfig = resolved.config
    overrides = {"conf": conf, "iou": iou, "max_det": max_det}
    cfg.eval = cfg.eval.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if data_root:
        cfg.data = cfg.data.model_copy(update={"root": Path(data_root)})
    if cfg.data.root is None:
        raise UsageProblem(f"{target}: no dataset known for this model; pass --data ROOT (data_root=)")
    out = Path(out_dir) if out_dir else resolved.out_dir / f"eval-{split}"
    used = backend or resolved.backend
    echo(f"evaluating {resolved.path} ({resolved.backend}) on {cfg.data.root} [{split}]")
    try:
        result = evaluate_target(resolved, cfg, split, backend=backend, save_vis=save_vis, vis_dir=out)
    except DetcliError:
        raise
    except (FileNotFoundError, ValueError) as e:  # a dataset folder or split file that is not there
        raise EvaluationFailed(str(e)) from None
    result.run = resolved.run["name"] if resolved.run else None
    result.model, result.backend, result.split = str(resolved.path), used, split
    result.data_root, result.out_dir = str(cfg.data.root), str(out)
    if resolved.run is not None:
        store.add_artifact(
            resolved.run["id"],
            "eval",
            out,
            {
                "split": split,
                "backend": used,
                "map50": result.map50,
                "map50_95": result.map50_95,
                "precision": result.precision,
                "recall": result.recall,
                "f1": result.f1,
                "conf": result.conf,
                "best_conf": result.best_conf,
                "model": str(resolved.path),
            },
        )
        store.log_event(
            resolved.run["id"],
            f"eval on {split} ({used}): mAP50 {result.map50:.4f} F1 {result.f1:.4f} at conf {result.conf:g}"
            + (f" ({len(result.skipped)} unreadable image(s) not scored)" if result.skipped else ""),
        )
    return result


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
