"""Time a model end to end per image: read (cv2.imread), pre-process, graph, post-process."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.infer import Predictor


@dataclass
class BenchRow:
    backend: str
    device: str
    precision: str
    artifact: str
    imgsz: str
    runs: int
    read_ms: float
    pre_ms: float
    infer_ms: float
    post_ms: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    fps: float
    rss_mb: float
    model_only_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def host_cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_predictor(
    predictor: Predictor,
    images: list[Path],
    runs: int = 200,
    warmup: int = 20,
    device: str = "cpu",
    precision: str = "fp32",
    artifact: str = "",
    progress=None,
) -> BenchRow:
    """Cycle through `images` for warmup + runs iterations; every iteration reads the file from disk."""
    if not images:
        raise ValueError("no images to benchmark with")
    timings = {"read": [], "pre": [], "infer": [], "post": [], "total": []}
    blob = None
    for i in range(warmup + runs):
        path = images[i % len(images)]
        t0 = time.perf_counter()
        img = cv2.imread(str(path))
        t1 = time.perf_counter()
        if img is None:
            raise ValueError(f"cannot read image {path}")
        _, t = predictor.predict_timed(img)
        if i >= warmup:
            read = (t1 - t0) * 1e3
            timings["read"].append(read)
            for k in ("pre", "infer", "post"):
                timings[k].append(t[k])
            timings["total"].append(read + t["pre"] + t["infer"] + t["post"])
        if progress:
            progress(i + 1, warmup + runs)
        if blob is None:
            from engine.infer.processing import preprocess

            # same input size as the timed runs (the cut size when cutting padding)
            blob = preprocess(img, predictor.imgsz, predictor.keep_ratio, predictor.cut_padding)
    # the same compiled graph timed alone on a fixed input: the overhead reference
    images_blob, meta = blob
    sizes = np.array([[meta.input_w, meta.input_h]], np.int64)
    alone = []
    for _ in range(max(10, runs // 4)):
        t = time.perf_counter()
        predictor.backend.run(images_blob, sizes)
        alone.append((time.perf_counter() - t) * 1e3)
    total = timings["total"]
    q = statistics.quantiles(total, n=20) if len(total) >= 2 else [total[0]] * 19
    return BenchRow(
        backend=predictor.backend.name,
        device=device,
        precision=precision,
        artifact=artifact,
        imgsz=f"{predictor.imgsz[0]}x{predictor.imgsz[1]}",
        runs=runs,
        read_ms=statistics.fmean(timings["read"]),
        pre_ms=statistics.fmean(timings["pre"]),
        infer_ms=statistics.fmean(timings["infer"]),
        post_ms=statistics.fmean(timings["post"]),
        mean_ms=statistics.fmean(total),
        p50_ms=statistics.median(total),
        p95_ms=q[18],
        fps=1000.0 / statistics.fmean(total),
        rss_mb=_rss_mb(),
        model_only_ms=statistics.median(alone),
    )
