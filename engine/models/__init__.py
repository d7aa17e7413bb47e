"""Detection models. Today: the D-FINE family (`dfine-n` ... `dfine-x`), faithful to the official code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.models.checkpoint import LoadReport, load_checkpoint, read_checkpoint, save_checkpoint
from engine.models.dfine.criterion import DFINECriterion, build_criterion
from engine.models.dfine.dfine import DFINE
from engine.models.dfine.postprocess import DFINEPostProcessor

MODEL_NAMES = ("dfine-n", "dfine-s", "dfine-m", "dfine-l", "dfine-x")


def build_model(name: str, num_classes: int = 80, **over: Any) -> DFINE:
    """Build a D-FINE model by name with the official hyper-parameters of that size.

    Overrides: `num_queries` (default 300), `num_layers` / `num_decoder_layers` (decoder depth), `eval_idx`,
    `num_denoising` (0 disables training-time denoising; also settable later as `model.decoder.num_denoising`),
    `label_noise_ratio`, `box_noise_scale`, `eval_spatial_size` ((h, w) the inference anchors are cached for).
    Building has no hidden global state: every call starts from a fresh copy of the size table.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model '{name}'; expected one of {', '.join(MODEL_NAMES)}")
    eval_size = over.pop("eval_spatial_size", (640, 640))
    return DFINE(name.split("-")[1], num_classes=num_classes, eval_spatial_size=eval_size, **over)


def build_model_from_checkpoint(path: str | Path) -> tuple[DFINE, dict[str, Any]]:
    """Rebuild a detcli checkpoint's model (its config is inside the file) and load its weights.

    Returns (model in eval mode, meta) where meta holds class_names, imgsz and anything saved with the weights.
    """
    ckpt = read_checkpoint(path)
    if "model_config" not in ckpt:
        raise ValueError(
            f"{path} has no model config (an official D-FINE file?): build the model with build_model(name, "
            "num_classes) and call load_checkpoint(model, path), or fine-tune it with model.pretrained=PATH"
        )
    cfg = dict(ckpt["model_config"])
    size, num_classes = cfg.pop("size"), cfg.pop("num_classes")
    eval_size = cfg.pop("eval_spatial_size", None)
    model = DFINE(
        size, num_classes=num_classes, eval_spatial_size=tuple(eval_size) if eval_size else None, **cfg
    )
    model.load_state_dict(ckpt["model"])
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "format")}
    return model, meta


__all__ = [
    "MODEL_NAMES",
    "DFINECriterion",
    "DFINEPostProcessor",
    "LoadReport",
    "build_criterion",
    "build_model",
    "build_model_from_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]
