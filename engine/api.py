"""The public Python API: `engine.train`, `engine.load` (-> a Model whose `predict` takes paths, arrays,
folders, videos and cameras). The CLI commands are thin layers over these calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelNotFound, TrainingFailed
from engine.infer.processing import Detections

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
MODEL_SUFFIXES = {".pt", ".pth", ".onnx", ".xml", ".engine"}


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


def resolve_model_path(model: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A model file or export as given, or a run name -> that run's best.pt (else last.pt)."""
    p = Path(model)
    if p.exists():
        return p
    if p.suffix.lower() in MODEL_SUFFIXES:
        raise ModelNotFound(f"model not found: {p}")
    from engine.runs import RunNotFound, RunStore

    if (Path(runs_dir)).is_dir():
        try:
            run = RunStore.open(runs_dir, recover=False).resolve_run(str(model))
        except RunNotFound as e:
            raise ModelNotFound(f"'{model}' is neither a model file nor a run in {runs_dir}: {e}") from None
        for fname in ("best.pt", "last.pt"):
            if (Path(run["dir"]) / fname).exists():
                return Path(run["dir"]) / fname
        raise ModelNotFound(f"run '{run['name']}' has no weights yet ({run['dir']} has no best.pt/last.pt)")
    raise ModelNotFound(
        f"'{model}' is neither a model file (.pt/.onnx/.xml/.engine) nor a run name (no runs in {runs_dir})"
    )


def load(
    model: str | Path,
    runs_dir: str | Path = "runs",
    device: str = "cpu",
    conf: float | None = None,
    backend: str | None = None,
) -> Model:
    """A Model from a checkpoint, an export (.onnx/.xml/.engine) or a run name."""
    from engine.infer.predictor import Predictor

    path = resolve_model_path(model, runs_dir)
    try:
        return Model(Predictor.from_path(path, backend=backend, device=device, conf=conf))
    except FileNotFoundError as e:
        raise ModelNotFound(str(e)) from None
    except ValueError as e:
        raise ModelNotFound(str(e)) from None


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

    def predict(self, source: Any, conf: float | None = None) -> Detections | list[Detections]:
        """Detections for one image (path or array) or a list of them; a folder gives a list in sorted order.

        A video file or a camera index streams: use `stream(source)` for those (one Prediction per frame).
        """
        if isinstance(source, np.ndarray):
            return self._named(self.predictor.predict(source, conf))
        if isinstance(source, int) or (isinstance(source, (str, Path)) and _is_video(source)):
            raise TypeError(
                "a video or camera streams: iterate model.stream(source) for one result per frame"
            )
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
        if isinstance(source, int) or (isinstance(source, (str, Path)) and _is_video(source)):
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


def _is_video(source: str | Path) -> bool:
    return Path(source).suffix.lower() in VIDEO_SUFFIXES
