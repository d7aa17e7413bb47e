"""Export a detcli checkpoint to ONNX / OpenVINO / TensorRT, with metadata inside each artifact."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.export.metadata import build_metadata
from engine.export.onnx_export import export_onnx
from engine.models import build_model_from_checkpoint


@dataclass
class ExportResult:
    """An exported file: `precision` is what the file holds; `runs_precision` on `runs_on` is what the compiled
    model really runs in on this machine (read back by engine.export; None where it cannot be checked here)."""

    path: Path
    format: str
    precision: str
    imgsz: tuple[int, int]
    dynamic: bool
    metadata: dict
    runs_on: str | None = None
    runs_precision: str | None = None
    runs_note: str | None = None


def export_checkpoint(
    weights: str | Path,
    fmt: str,
    out_dir: str | Path | None = None,
    imgsz: tuple[int, int] | None = None,
    half: bool = False,
    int8: bool = False,
    simplify: bool = False,
    opset: int = 17,
    dynamic: bool = False,
    calibration: list[Path] | None = None,
) -> ExportResult:
    """Export `weights` (a detcli .pt) as `fmt`; files go next to the weights unless out_dir is given."""
    weights = Path(weights)
    model, meta = build_model_from_checkpoint(weights)
    size = tuple(imgsz or meta.get("imgsz") or (640, 640))
    out = Path(out_dir) if out_dir else weights.parent
    precision = "int8" if int8 else ("fp16" if half else "fp32")
    metadata = build_metadata(meta, size, fmt=fmt, precision=precision, source=str(weights), dynamic=dynamic)
    stem = f"{weights.stem}-{size[0]}x{size[1]}{'-dynamic' if dynamic else ''}"
    if fmt == "onnx":
        if half or int8:
            raise ValueError("ONNX export is FP32; use --format openvino/tensorrt for FP16/INT8")
        path = export_onnx(
            model, out / f"{stem}.onnx", size, metadata, opset, simplify=simplify, dynamic=dynamic
        )
    elif fmt == "openvino":
        from engine.export.openvino_export import export_openvino, require_nncf

        images = None
        if int8:
            require_nncf()  # fail before the slow ONNX step when NNCF is missing
            if not calibration:
                raise ValueError("INT8 needs calibration images (the run's train split)")
            from engine.data.decode import read_image
            from engine.infer.processing import preprocess

            images = [
                preprocess(im, size, bool(meta.get("keep_ratio")))[0]
                for im in (read_image(p) for p in calibration)
                if im is not None
            ]
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", size, metadata, opset, dynamic=dynamic)
            path = export_openvino(
                onnx_path, out / f"{stem}-{precision}.xml", metadata, half=half, int8_images=images
            )
    elif fmt == "tensorrt":
        from engine.export.tensorrt import export_tensorrt, require_tensorrt

        require_tensorrt()  # fail before the slow ONNX step when there is no GPU
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, Path(tmp) / "model.onnx", size, metadata, opset, dynamic=dynamic)
            path = export_tensorrt(
                onnx_path, out / f"{stem}-{precision}.engine", metadata, half=half, imgsz=size
            )
    else:
        raise ValueError(f"unknown export format '{fmt}' (onnx, openvino, tensorrt)")
    return ExportResult(path, fmt, precision, size, dynamic, metadata)
