"""The benchmark as it runs on a target device: `python -m engine.bench.target job.json` with only the engine
modules it needs on PYTHONPATH (shipped as a zip by engine/bench/remote.py or engine/bench/bundle.py).

It times with the same `bench_predictor` as local bench, and prints one JSON document on stdout: the target's
CPU and GPU names, its OpenVINO devices and one row per backend. Imports nothing outside numpy, OpenCV,
simplejpeg and the backend's runtime, so a bare Python on the target can run it."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

SCHEMA = 1
RUNTIMES = {"openvino": "openvino", "onnx": "onnxruntime", "tensorrt": "tensorrt"}
# exit status the caller reads as "the runtime is missing here", distinct from a crash
MISSING_RUNTIME = 3


def _missing(backends: list[str]) -> list[str]:
    need = ["numpy", "cv2", "simplejpeg", *(RUNTIMES[b] for b in backends if b in RUNTIMES)]
    out = []
    for mod in need:
        try:
            importlib.import_module(mod)
        except ImportError:
            out.append(mod)
    return out


def _openvino_devices() -> dict[str, str]:
    try:
        from engine.infer.openvino_core import core
    except ImportError:
        return {}
    c = core()
    try:
        return {d: str(c.get_property(d, "FULL_DEVICE_NAME")) for d in c.available_devices}
    except Exception:  # a device plugin that cannot name itself still counts as present
        return {d: d for d in c.available_devices}


def run_job(job: dict, base: Path) -> dict:
    """Benchmark every entry of `job["entries"]` (artifact, backend, device, precision, options) on the images
    in `job["images"]`, and with `job["accuracy"]` detect on its files with the same predictor (same device,
    same precision) for scoring back home; paths are relative to `base`."""
    from engine.bench.runner import bench_predictor, host_cpu
    from engine.infer import Predictor

    images = sorted((base / job["images"]).iterdir())
    devices = _openvino_devices()
    rows, detections = [], []
    acc = job.get("accuracy")
    for e in job["entries"]:
        device, options, notes = e["device"], dict(e.get("options", {})), []
        if e["backend"] == "openvino" and device.upper() == "GPU" and "GPU" not in devices:
            # the profile wants the iGPU and this target has none visible: say so in the row, not silently
            device = e.get("fallback_device", "CPU")
            options["precision"] = None
            notes.append(f"no Intel GPU visible to OpenVINO on the target: ran on {device}")
        predictor = Predictor.from_path(base / e["artifact"], backend=e["backend"], device=device, **options)
        row = bench_predictor(
            predictor, images, job["runs"], job["warmup"], device, e["precision"], e["artifact"]
        )
        row.notes.extend(notes)
        rows.append(row.to_dict())
        if acc:
            detections.append(_detect(predictor, base / acc["images"], acc["files"], acc["max_det"]))
    gpu = next((name for d, name in devices.items() if d.startswith("GPU")), None)
    return {
        "schema": SCHEMA,
        "host_cpu": host_cpu(),
        "host_gpu": gpu,
        "openvino_devices": devices,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "rows": rows,
        "meta": job.get("meta", {}),  # what the caller needs to record the rows (run, profile, host)
        **({"accuracy": detections} if acc else {}),
    }


def _detect(predictor, folder: Path, files: list[str], max_det: int) -> list[dict | None]:
    """Every detection (no threshold, as eval scores them) per file, through the same `predict_files` as local
    eval; None for a file that cannot be read here, so the caller names it instead of scoring it."""
    out = []
    for item in predictor.predict_files([folder / f for f in files], conf=0.0):
        out.append(None if item.detections is None else item.detections.to_json(max_det))
    return out


def main(argv: list[str]) -> int:
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text())
    missing = _missing([e["backend"] for e in job["entries"]])
    if missing:
        print(json.dumps({"schema": SCHEMA, "missing": missing}))
        return MISSING_RUNTIME
    print(json.dumps(run_job(job, job_path.parent)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
