"""Time a model end to end per image: read (`read_image`: cv2.imread's pixels), pre-process, graph,
post-process; the graph alone; and, where `predict_files` reads ahead, files streamed with reading overlapped."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.data.decode import read_image
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
    stream_ms: float | None = None  # per image with reading and pre-processing overlapped with the graph
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
    stream: bool | None = None,
) -> BenchRow:
    """Time `runs` images one at a time (each read from disk: read, pre, graph, post) after `warmup` untimed ones,
    the graph alone on a fixed input between them (every other image), and, with `stream` (by default when the
    graph runs off the CPU, as `predict_files` reads ahead then), max(10, runs // 2) images streamed through
    `predict_files` with the next file read while the graph runs. They are interleaved in rounds, so a drift in
    machine load hits them alike and their ratios stay meaningful on a noisy machine.
    `progress(done, total)` is called after every image."""
    if not images:
        raise ValueError("no images to benchmark with")
    timings = {"read": [], "pre": [], "infer": [], "post": [], "total": []}
    alone: list[float] = []
    streamed: list[float] = []  # ms per image, one value per round
    if stream is None:
        stream = not predictor.backend.on_cpu
    stream_runs = max(10, runs // 2) if stream else 0
    steps, done = warmup + runs + stream_runs, 0
    fixed = None
    cursor = 0

    def next_files(n: int) -> list[Path]:
        nonlocal cursor
        files = [images[(cursor + k) % len(images)] for k in range(n)]
        cursor += n
        return files

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, steps)

    def load(path: Path):
        img = read_image(path)
        if img is None:
            raise ValueError(f"cannot read image {path}")
        return img

    for path in next_files(warmup):
        predictor.predict(load(path))
        tick()
    rounds = max(1, min(runs, stream_runs or runs) // 10)
    for r in range(rounds):
        n_sync = runs * (r + 1) // rounds - runs * r // rounds
        for path in next_files(n_sync):
            t0 = time.perf_counter()
            img = load(path)
            t1 = time.perf_counter()
            _, t = predictor.predict_timed(img)
            read = (t1 - t0) * 1e3
            timings["read"].append(read)
            for k in ("pre", "infer", "post"):
                timings[k].append(t[k])
            timings["total"].append(read + t["pre"] + t["infer"] + t["post"])
            if fixed is None:  # same input size as the timed runs (the cut size when cutting padding)
                blob, _, sizes = fixed = predictor.prepare(img)
            if len(timings["total"]) % 2:
                t2 = time.perf_counter()
                predictor.backend.run(blob, sizes)
                alone.append((time.perf_counter() - t2) * 1e3)
            tick()
        n_stream = stream_runs * (r + 1) // rounds - stream_runs * r // rounds
        if n_stream:
            t3 = time.perf_counter()
            for _ in predictor.predict_files(next_files(n_stream), read_ahead=2):
                tick()
            streamed.append((time.perf_counter() - t3) * 1e3 / n_stream)
    stream_ms = statistics.median(streamed) if streamed else None
    total = timings["total"]
    q = statistics.quantiles(total, n=20) if len(total) >= 2 else [total[0]] * 19
    return BenchRow(
        backend=predictor.backend.name,
        device=device,
        # what the compiled graph really runs (e.g. an f16 request runs f32 on a CPU without f16 arithmetic)
        precision=getattr(predictor.backend, "precision", None) or precision,
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
        stream_ms=stream_ms,
    )
