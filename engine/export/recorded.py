"""Exports that belong to a run: made from its best weights, checked for the precision they really run in on this
machine, recorded in its history, and found again (bench reuses a matching export rather than making another)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.errors import DetcliError, ExportFailed, UsageProblem
from engine.export.run_export import ExportResult, export_checkpoint
from engine.runs import RunStore
from engine.runs.targets import resolve_target

Echo = Callable[[str], None]


def runs_as(path: Path, fmt: str, precision: str) -> tuple[str | None, str | None, str | None]:
    """(device, precision, why) the exported graph really runs in here, read back from the compiled model.

    OpenVINO is compiled on its CPU with the precision rule of engine/infer/precision.py (an fp16 file runs in
    f16 only where the CPU has f16 arithmetic); ONNX Runtime's CPU provider runs the fp32 graph as it is;
    TensorRT engines need a GPU to read back, so (None, None, why) where there is none."""
    if fmt == "onnx":
        return "CPU", "fp32", None
    if fmt == "openvino":
        from engine.infer.backends import OpenVinoBackend

        hint = "f16" if precision == "fp16" else None
        try:
            backend = OpenVinoBackend(path, device="CPU", precision=hint)
        except (ImportError, RuntimeError) as e:
            return None, None, f"could not compile it here to check: {e}"
        why = None
        if precision == "fp16" and backend.precision != "fp16":
            why = "this CPU has no native f16 arithmetic, so OpenVINO runs the fp16 weights in fp32"
        elif precision == "int8":
            why = f"quantised layers run in int8; those kept in float (decoder, stem) in {backend.precision}"
            return "CPU", f"int8/{backend.precision}", why
        return "CPU", backend.precision, why
    return None, None, "TensorRT picks each layer's precision within what the engine allows; it runs on a GPU"


def export_model(
    target: str | Path,
    fmt: str = "onnx",
    half: bool = False,
    int8: bool = False,
    imgsz: tuple[int, int] | None = None,
    dynamic: bool = False,
    simplify: bool = False,
    out_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
) -> ExportResult:
    """Export a run's best weights (or a .pt) as `fmt`, read back the precision it runs in, record it on its run."""
    from engine.export.tensorrt import TensorRTUnavailable

    store = RunStore.open(runs_dir)
    resolved = resolve_target(target, store)
    if resolved.backend != "torch":
        raise UsageProblem(f"{target} is already an export: export a run or a .pt checkpoint")
    run = resolved.run
    calibration = None
    if int8:
        from engine.data.formats.yolo import split_images

        if run is None:
            raise UsageProblem("--int8 (int8=True) calibrates on the run's train images: give a run name")
        cfg = resolved.config
        calibration = split_images(Path(cfg.data.root), cfg.data.train_split)[:64]
    try:
        res = export_checkpoint(
            resolved.path,
            fmt,
            out_dir,
            tuple(imgsz) if imgsz else None,
            half,
            int8,
            simplify=simplify,
            calibration=calibration,
            dynamic=dynamic,
        )
    except TensorRTUnavailable as e:
        raise UsageProblem(str(e)) from None
    except DetcliError:
        raise
    except (RuntimeError, ValueError) as e:
        raise ExportFailed(str(e)) from None
    res.runs_on, res.runs_precision, res.runs_note = runs_as(res.path, fmt, res.precision)
    if run is not None:
        record_export(store, run, res)
        store.log_event(
            run["id"],
            f"exported {fmt} {res.precision}: {res.path.name}"
            + (f" (runs {res.runs_precision} on {res.runs_on})" if res.runs_precision else ""),
        )
    return res


def record_export(store: RunStore, run: dict, res: ExportResult) -> None:
    """The export as an artifact of its run; `precision` is the file's, `runs_precision` what runs here."""
    meta = {
        "format": res.format,
        "precision": res.precision,
        "imgsz": list(res.imgsz),
        "dynamic": res.dynamic,
    }
    if res.runs_precision:
        meta |= {"runs_precision": res.runs_precision, "runs_on": res.runs_on}
    store.add_artifact(run["id"], "export", res.path, meta)


def export_for_backend(
    backend: str,
    weights: Path,
    run: dict | None,
    store: RunStore,
    precision: str,
    dynamic: bool,
    echo: Echo,
) -> Path:
    """The model file `backend` runs: the weights themselves for torch, else the run's matching export, or a
    fresh one next to the weights (recorded on the run)."""
    if backend == "torch":
        return weights
    fmt = {"onnx": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}[backend]
    if run is not None:
        for a in reversed(store.artifacts(run["id"], "export")):
            m = a["meta"]
            if (
                m.get("format") == fmt
                and m.get("precision") == precision
                and bool(m.get("dynamic")) == dynamic
                and Path(a["path"]).exists()
            ):
                return Path(a["path"])
    echo(f"exporting {fmt} {precision} for the benchmark ...")
    res = export_checkpoint(weights, fmt, half=precision == "fp16", dynamic=dynamic)
    if run is not None:
        record_export(store, run, res)
    return res.path
