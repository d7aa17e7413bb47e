"""TensorRT engines, built from the exported ONNX with the TensorRT Python API (only where TensorRT + CUDA exist)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.export.metadata import sidecar_path


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing; the message says which and what to install."""


def require_tensorrt():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        raise TensorRTUnavailable("PyTorch is required") from None
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            "TensorRT needs an NVIDIA GPU with CUDA; none is visible on this machine "
            "(export to onnx or openvino instead, or run on the GPU box)"
        )
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable("TensorRT is not installed: pip install 'detcli[tensorrt]'") from None
    return trt, torch


def export_tensorrt(
    onnx_path: Path,
    engine_path: Path,
    metadata: dict,
    half: bool = True,
    imgsz: tuple[int, int] = (640, 640),
    max_batch: int = 1,
) -> Path:
    """Build a serialized engine (FP16 if `half`); metadata goes to a sidecar json."""
    trt, _ = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if half:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    h, w = imgsz
    profile.set_shape("images", (1, 3, h, w), (1, 3, h, w), (max_batch, 3, h, w))
    profile.set_shape("orig_target_sizes", (1, 2), (1, 2), (max_batch, 2))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    engine_path.write_bytes(serialized)
    sidecar_path(engine_path).write_text(json.dumps(metadata, indent=2))
    return engine_path
