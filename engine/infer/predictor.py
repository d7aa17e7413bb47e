"""`Predictor`: load any detcli artifact (.pt, .onnx, .xml, .engine) and detect objects in BGR images."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.decode import read_image
from engine.geometry import ResizeMeta
from engine.infer.backends import Backend, OnnxBackend, OpenVinoBackend, TensorRTBackend, TorchBackend
from engine.infer.processing import Detections, postprocess, preprocess

BACKEND_BY_SUFFIX = {
    ".pt": "torch",
    ".pth": "torch",
    ".onnx": "onnx",
    ".xml": "openvino",
    ".engine": "tensorrt",
}


def backend_for(path: Path) -> str:
    try:
        return BACKEND_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"{path}: unknown model type '{path.suffix}' (expected .pt, .onnx, .xml or .engine)"
        ) from None


class Predictor:
    """Same pre-processing, same post-processing, any backend: outputs agree across backends."""

    def __init__(
        self, backend: Backend, meta: dict[str, Any], conf: float | None = None, cut_padding: bool = False
    ):
        self.backend, self.meta = backend, meta
        self.imgsz = tuple(meta["imgsz"])
        self.keep_ratio = bool(meta.get("keep_ratio", False))
        self.class_names = list(meta.get("class_names", []))
        default_conf = meta.get("best_conf") or 0.5
        self.conf = float(conf if conf is not None else default_conf)
        if cut_padding and not (self.keep_ratio and backend.dynamic):
            raise ValueError(
                "cut-padding inference needs a letterbox model (data.keep_ratio=true) that takes any input size: "
                "PyTorch weights, or an export made with `detcli export --dynamic`"
            )
        self.cut_padding = cut_padding

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        backend: str | None = None,
        device: str = "cpu",
        conf: float | None = None,
        cut_padding: bool = False,
        **backend_options: Any,
    ) -> Predictor:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model not found: {path}")
        kind = backend or backend_for(path)
        if kind == "torch":
            be = TorchBackend(path, device)
            meta = {
                "class_names": be.meta.get("class_names", []),
                "imgsz": be.meta.get("imgsz", [640, 640]),
                "keep_ratio": be.meta.get("keep_ratio", False),
                "best_conf": be.meta.get("best_conf"),
                "run_name": be.meta.get("run_name"),
            }
            return cls(be, meta, conf, cut_padding)
        from engine.export.metadata import read_metadata

        meta = read_metadata(path)
        if kind == "onnx":
            be = OnnxBackend(path, device, **backend_options)
        elif kind == "openvino":
            # OpenVINO names devices CPU / GPU / NPU / AUTO
            be = OpenVinoBackend(path, device=device.upper(), **backend_options)
        elif kind == "tensorrt":
            be = TensorRTBackend(path, device)
        else:
            raise ValueError(f"unknown backend '{kind}'")
        return cls(be, meta, conf, cut_padding)

    def predict(self, image_bgr: np.ndarray, conf: float | None = None) -> Detections:
        return self.predict_timed(image_bgr, conf)[0]

    def predict_batch(self, images_bgr: list[np.ndarray], conf: float | None = None) -> list[Detections]:
        """Detections for several images from one run of the graph.

        With cut-padding each image has its own input size, so those run one at a time.
        """
        if self.cut_padding:
            return [self.predict(img, conf) for img in images_bgr]
        if not images_bgr:
            return []
        prepared = [preprocess(img, self.imgsz, self.keep_ratio) for img in images_bgr]
        blob = np.concatenate([b for b, _ in prepared])
        sizes = np.array([[m.input_w, m.input_h] for _, m in prepared], np.int64)
        labels, boxes, scores = self.backend.run(blob, sizes)
        thr = self.conf if conf is None else conf
        return [postprocess(labels[i], boxes[i], scores[i], m, thr) for i, (_, m) in enumerate(prepared)]

    def predict_timed(
        self, image_bgr: np.ndarray, conf: float | None = None
    ) -> tuple[Detections, dict[str, float]]:
        """Detections plus the time (ms) spent in pre-processing, the graph, and post-processing."""
        t0 = time.perf_counter()
        prepared = self.prepare(image_bgr)
        pre = (time.perf_counter() - t0) * 1e3
        det, t = self._finish(prepared, conf)
        return det, {"pre": pre, **t}

    def predict_files(
        self, paths: Iterable[str | Path], conf: float | None = None, read_ahead: int | None = None
    ) -> Iterator[FilePrediction]:
        """Detections for image files, in order. An unreadable file gives a FilePrediction with `image=None` and
        no detections; it never stops the stream.

        With `read_ahead` > 0, a second thread reads and pre-processes that many files ahead while the graph runs
        (decoding, resizing and the runtimes release the GIL). By default it reads ahead only when the graph
        runs off the CPU (a GPU, an iGPU): when it runs on the CPU, it keeps every core busy, and on the 2-core
        machines we measured on, a reader thread beside it slowed the graph by about as much as it saved
        (`benchmarks/inference_latency.py`, "streamed").
        """
        depth = (0 if self.backend.on_cpu else 2) if read_ahead is None else read_ahead
        if depth <= 0:
            for path in paths:
                image, prepared, timings = self._read_and_prepare(path)
                yield self._result(path, image, prepared, timings, conf)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="detcli-read") as pool:
            pending: deque = deque()
            files = iter(paths)
            try:
                for _ in range(depth):
                    self._submit(pool, pending, files)
                while pending:
                    path, job = pending.popleft()
                    self._submit(pool, pending, files)
                    yield self._result(path, *job.result(), conf)
            finally:  # the consumer may stop early: drop what was read ahead
                for _, job in pending:
                    job.cancel()

    def _result(self, path, image, prepared, timings: dict, conf: float | None) -> FilePrediction:
        if prepared is None:
            return FilePrediction(Path(path), None, None, timings)
        det, t = self._finish(prepared, conf)
        return FilePrediction(Path(path), image, det, {**timings, **t})

    def _submit(self, pool: ThreadPoolExecutor, pending: deque, files: Iterator) -> None:
        path = next(files, None)
        if path is not None:
            pending.append((path, pool.submit(self._read_and_prepare, path)))

    def _read_and_prepare(self, path: str | Path):
        t0 = time.perf_counter()
        image = read_image(path)
        t1 = time.perf_counter()
        prepared = None if image is None else self.prepare(image)
        t2 = time.perf_counter()
        return image, prepared, {"read": (t1 - t0) * 1e3, "pre": (t2 - t1) * 1e3}

    def prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, ResizeMeta, np.ndarray]:
        """One image through the shared pre-processing: (blob, how it was resized, input sizes for the graph)."""
        blob, meta = preprocess(image_bgr, self.imgsz, self.keep_ratio, self.cut_padding)
        return blob, meta, np.array([[meta.input_w, meta.input_h]], np.int64)

    def _finish(self, prepared, conf: float | None) -> tuple[Detections, dict[str, float]]:
        blob, meta, sizes = prepared
        t0 = time.perf_counter()
        labels, boxes, scores = self.backend.run(blob, sizes)
        t1 = time.perf_counter()
        det = postprocess(labels[0], boxes[0], scores[0], meta, self.conf if conf is None else conf)
        t2 = time.perf_counter()
        return det, {"infer": (t1 - t0) * 1e3, "post": (t2 - t1) * 1e3}


@dataclass
class FilePrediction:
    """One file's result from `Predictor.predict_files`; `image` is None when the file could not be read."""

    path: Path
    image: np.ndarray | None
    detections: Detections | None
    timings: dict[str, float]  # ms: read, pre, and (for a readable file) infer, post
