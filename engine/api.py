"""The public Python API: `engine.train`, `engine.load` (-> a Model whose `predict` takes paths, arrays,
folders, videos and cameras), `engine.evaluate`, `engine.export`, `engine.bench`. The CLI commands are thin
layers over these calls: they parse arguments and render what comes back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelNotFound, TrainingFailed, UsageProblem
from engine.infer.processing import Detections

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class TrainResult:
    """What a training call left behind; the run history holds the full record."""

    name: str
    status: str
    run_dir: Path
    best_epoch: int | None
    best_metric: float | None
    best_path: Path | None
    last_path: Path
    epochs_done: int
    steps: int
    seconds: float


def train(
    preset: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    resume: str | None = None,
    config_file: str | Path | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    echo: Callable[[str], None] = print,
    attach: str | None = None,
    fit: Callable[[Any], Any] | None = None,
) -> TrainResult | None:
    """Train a detector as `detcli train` does; the run appears in `detcli runs list` and the dashboard.

    `overrides` are dotted keys (`{"train.epochs": 5}` or `["train.epochs=5"]`). `train.devices=cpu:2` or
    `0,1` starts one process per device with torchrun and waits. `attach` is a torchrun worker joining a run
    (returns None); `fit` replaces `trainer.fit()` (the CLI's dashboard mode).
    """
    from engine.runs import RunStore
    from engine.runs.launch import device_count, launch_workers, open_run, prepare_data, resolve_config
    from engine.train.trainer import Trainer, TrainingStopped
    from engine.weights import WeightsError

    runs_dir = Path(runs_dir)
    ov = [f"{k}={v}" for k, v in overrides.items()] if isinstance(overrides, dict) else list(overrides or [])
    store = RunStore.open(runs_dir)
    rank = int(os.environ.get("RANK", "0"))
    say = echo if rank == 0 else (lambda *a, **k: None)
    cfg, run = resolve_config(store, preset, config_file, ov, resume or attach)
    if rank == 0:
        prepare_data(cfg, say)
    if attach is None:
        run = open_run(store, cfg, run, name)
        say(f"run {run['name']} -> {run['dir']}  (watch it: detcli dashboard {run['name']})")
        procs = device_count(cfg.train.devices)
        if procs > 1:
            status = launch_workers(runs_dir, run, procs, store, say)
            return _result(store.get_run(run["id"]), status, None)
    run = store.get_run(run["id"])
    main_writer = rank == 0 and attach is None
    try:
        trainer = Trainer(
            cfg,
            store if rank == 0 else None,
            run,
            resume=bool(resume or (attach and (Path(run["dir"]) / "last.pt").exists())),
            on_step=on_step,
            on_epoch=on_epoch,
        )
        summary = fit(trainer) if fit else trainer.fit()
    except TrainingStopped as e:
        if main_writer:
            store.finish_run(run["id"], "failed", error=str(e))
        raise TrainingFailed(str(e)) from None
    except WeightsError as e:  # the starting weights cannot serve: refused before any training step
        if main_writer:
            store.finish_run(run["id"], "failed", error=str(e))
        raise
    except Exception as e:
        if main_writer:
            store.finish_run(run["id"], "failed", error=f"{type(e).__name__}: {e}")
        raise
    if attach is not None:
        return None
    store.finish_run(run["id"], summary.status)
    if summary.best_path:
        say(f"best epoch {summary.best_epoch + 1}: {cfg.eval.best_metric} = {summary.best_metric:.4f}")
        say(f"weights: {summary.best_path} (best), {Path(run['dir']) / 'last.pt'} (last)")
    say(
        f"{summary.status}: {summary.epochs_done} epoch(s), {summary.steps} steps in {summary.seconds / 60:.1f} min"
    )
    if summary.status == "interrupted":
        say(f"resume with: detcli train --resume {run['name']}")
    return _result(run, summary.status, summary)


def _result(run: dict, status: str, summary) -> TrainResult:
    d = Path(run["dir"])
    best = d / "best.pt"
    return TrainResult(
        name=run["name"],
        status=status,
        run_dir=d,
        best_epoch=summary.best_epoch if summary else run.get("best_epoch"),
        best_metric=summary.best_metric if summary else run.get("best_metric"),
        best_path=summary.best_path if summary else (best if best.exists() else None),
        last_path=d / "last.pt",
        epochs_done=summary.epochs_done if summary else 0,
        steps=summary.steps if summary else 0,
        seconds=summary.seconds if summary else 0.0,
    )


def load(
    model: str | Path,
    runs_dir: str | Path = "runs",
    device: str = "cpu",
    conf: float | None = None,
    backend: str | None = None,
) -> Model:
    """A Model from a checkpoint, an export (.onnx/.xml/.engine), a run name, or a weights-registry name
    (`detcli weights list`: the official COCO/Objects365 detectors, fetched into the cache on first use)."""
    from engine.infer.predictor import Predictor
    from engine.runs.targets import resolve_model_path

    try:
        path = resolve_model_path(model, runs_dir)
    except ModelNotFound as e:
        from engine.weights.registry import find_entry

        entry = find_entry(str(model))
        if entry is None:
            if Path(model).suffix:  # a file name: the registry is no place to look
                raise
            raise ModelNotFound(f"{e}; nor a name in `detcli weights list`") from None
        return Model(registry_predictor(entry, device=device, conf=conf))
    try:
        return Model(Predictor.from_path(path, backend=backend, device=device, conf=conf))
    except FileNotFoundError as e:
        raise ModelNotFound(str(e)) from None
    except ValueError as e:
        raise ModelNotFound(str(e)) from None


def registry_predictor(entry, device: str = "cpu", conf: float | None = None):
    """A Predictor for an official detector file: its model built at the registry's size with its class set."""
    from engine.infer.backends import TorchBackend
    from engine.infer.predictor import Predictor
    from engine.models import build_model, load_checkpoint
    from engine.weights import resolve_weights
    from engine.weights.registry import class_set

    if entry.kind != "detector" or not entry.classes:
        raise UsageProblem(
            f"{entry.name} is a {entry.kind} file, not a whole detector: train from it with "
            f"model.backbone_pretrained={entry.name}"
        )
    weights = resolve_weights(entry.name)
    names, offset, rows = class_set(entry.classes)
    model = build_model(entry.fits, num_classes=rows)
    load_checkpoint(model, weights.path)
    # label i of the head is class i - offset of the set (Objects365's head has a leading background row)
    labels = ["background"] * offset + list(names)
    labels += [f"class{i}" for i in range(len(labels), rows)]
    meta = {"class_names": labels, "imgsz": [640, 640], "keep_ratio": False, "best_conf": None}
    return Predictor(TorchBackend.from_model(model, device), meta, conf)


def evaluate(
    run_or_model: str | Path,
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
):
    """Score a run, a checkpoint or an export as `detcli eval` does: an EvalResult with COCO mAP (map50_95,
    map50, ...) and precision/recall/F1/IoU at the production threshold; recorded on the model's run."""
    from engine.evaluation import evaluate_model

    return evaluate_model(
        run_or_model, split, runs_dir, data_root, conf, iou, max_det, backend, save_vis, out_dir, echo
    )


def export(
    run_or_model: str | Path,
    format: str = "onnx",  # the name users know from `detcli export --format`
    half: bool = False,
    int8: bool = False,
    imgsz: tuple[int, int] | None = None,
    dynamic: bool = False,
    simplify: bool = False,
    out_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
):
    """Export a run's best weights (or a .pt) as onnx / openvino / tensorrt, as `detcli export` does.

    Returns an ExportResult: `path`, the file's `precision`, and `runs_precision` on `runs_on`, the precision
    the compiled model really runs in on this machine (read back; an fp16 OpenVINO file runs fp32 on a CPU
    without f16 arithmetic)."""
    from engine.export.recorded import export_model

    return export_model(run_or_model, format, half, int8, imgsz, dynamic, simplify, out_dir, runs_dir)


def bench(
    run_or_model: str | Path,
    device: str = "auto",
    runs_dir: str | Path = "runs",
    backends: list[str] | tuple[str, ...] | None = None,
    compare: bool = False,
    images: str | Path | None = None,
    runs: int = 200,
    warmup: int = 20,
    dynamic: bool = False,
    accuracy: bool = False,
    echo: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
):
    """Time a model on this machine with a device profile, as `detcli bench` does (exports made as needed).

    Returns a BenchTable: `rows` (one BenchRow per backend: read/pre/infer/post, mean, p50, p95, FPS, and the
    precision the compiled model really runs), each also stored in the run history."""
    from engine.bench.local import BenchTable, bench_here, plan_bench

    plan = plan_bench(run_or_model, device, backends, compare, images, runs_dir)
    for note in plan.notes:
        echo(f"warning: {note}")
    rows = bench_here(plan, runs, warmup, dynamic, accuracy, echo, progress)
    return BenchTable(plan.profile.name, rows, plan.notes)


@dataclass
class Prediction:
    """One image or video frame's result: where it came from, the image (None if unreadable), the detections."""

    source: str
    image: np.ndarray | None
    detections: Detections | None
    frame: int | None = None


class Model:
    """A loaded detector: `predict` on a path, a BGR array, a list, a folder, a video file or a camera index."""

    def __init__(self, predictor):
        self.predictor = predictor

    @property
    def names(self) -> list[str]:
        return self.predictor.class_names

    @property
    def conf(self) -> float:
        return self.predictor.conf

    def predict(
        self, source: Any, conf: float | None = None
    ) -> Detections | list[Detections] | Iterator[Prediction]:
        """Detections for one image (path or BGR array) or a list of them; a folder gives a list in sorted order.

        A video file or a camera index streams: an iterator of Prediction (`frame`, `image`, `detections`),
        one per frame, read as it is consumed (the same as `stream(source)`)."""
        if isinstance(source, np.ndarray):
            return self._named(self.predictor.predict(source, conf))
        if isinstance(source, int) or (isinstance(source, (str, Path)) and is_video(source)):
            return self.stream(source, conf)
        if isinstance(source, (list, tuple)):
            return [self.predict(s, conf) for s in source]
        p = Path(source)
        if p.is_dir():
            return [r.detections for r in self.stream(p, conf)]
        r = next(iter(self.stream(p, conf)))
        if r.detections is None:
            raise ModelNotFound(f"cannot read image {p}")
        return r.detections

    def stream(self, source: Any, conf: float | None = None) -> Iterator[Prediction]:
        """One Prediction per image of a file/folder/list, or per frame of a video or camera, read lazily."""
        if isinstance(source, int) or (isinstance(source, (str, Path)) and is_video(source)):
            yield from self._frames(source, conf)
            return
        from engine.data.formats.yolo import IMAGE_SUFFIXES

        if isinstance(source, (list, tuple)):
            files = [Path(s) for s in source]
        else:
            p = Path(source)
            if not p.exists():
                raise ModelNotFound(f"no such image, folder or video: {p}")
            files = (
                [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            )
        for item in self.predictor.predict_files(files, conf):
            det = self._named(item.detections) if item.detections is not None else None
            yield Prediction(str(item.path), item.image, det)

    def _frames(self, source: int | str | Path, conf: float | None) -> Iterator[Prediction]:
        import cv2

        cap = cv2.VideoCapture(source if isinstance(source, int) else str(source))
        if not cap.isOpened():
            raise ModelNotFound(f"cannot open video or camera {source}")
        try:
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield Prediction(str(source), frame, self._named(self.predictor.predict(frame, conf)), i)
                i += 1
        finally:
            cap.release()

    def _named(self, det: Detections) -> Detections:
        det.names = self.names
        return det


def is_video(source: str | Path) -> bool:
    """Whether `source` names a video file (by its suffix)."""
    return Path(source).suffix.lower() in VIDEO_SUFFIXES
