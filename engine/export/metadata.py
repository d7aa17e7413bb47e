"""Metadata that travels inside every exported artifact, so a file alone can be run and evaluated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEY = "detcli"


def build_metadata(
    meta: dict[str, Any],
    imgsz: tuple[int, int],
    *,
    fmt: str,
    precision: str,
    source: str,
    dynamic: bool = False,
) -> dict[str, Any]:
    """class names, input size, resize mode, normalisation, F1-best threshold, source run/weights."""
    return {
        "format": fmt,
        "precision": precision,
        "class_names": list(meta.get("class_names", [])),
        "imgsz": [int(imgsz[0]), int(imgsz[1])],
        "keep_ratio": bool(meta.get("keep_ratio", False)),
        "mean": [0.0, 0.0, 0.0],
        "std": [1.0, 1.0, 1.0],  # D-FINE takes RGB in [0, 1] without mean/std normalisation
        "best_conf": meta.get("best_conf"),
        "dynamic": dynamic,
        "source": source,
        "run_name": meta.get("run_name"),
    }


def sidecar_path(artifact: Path) -> Path:
    return artifact.with_suffix(artifact.suffix + ".json")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of an .onnx / .xml / .engine artifact (embedded, else the sidecar json)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == KEY:
                return json.loads(prop.value)
    elif path.suffix == ".xml":
        from engine.infer.openvino_core import core

        model = core().read_model(str(path))
        if model.has_rt_info([KEY]):
            return json.loads(model.get_rt_info([KEY]).astype(str))
    side = sidecar_path(path)
    if side.is_file():
        return json.loads(side.read_text())
    raise ValueError(
        f"{path}: no detcli metadata inside and no {side.name} beside it: was it exported by detcli?"
    )
