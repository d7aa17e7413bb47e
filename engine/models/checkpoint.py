"""Loading official and detcli checkpoints, and saving detcli ones that rebuild their model alone.

Files are read with `torch.load(weights_only=True)`: a checkpoint from the internet never runs code.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.weights.errors import WeightsMismatch

FORMAT = "detcli-checkpoint-v1"
BACKBONE = "backbone."
_STAGE1 = ("stem.", "stages.")
_COUNTER = "num_batches_tracked"
MIN_FILL = 0.9  # a file that fills less of its part than this is refused: it is not meant for this model


@dataclass
class LoadReport:
    """What `load_checkpoint` did with each key of the file and of the model."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(
        default_factory=list
    )  # in the file, but the shape differs (e.g. classes)
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    missing: list[str] = field(default_factory=list)  # in the model, not in the file (left as initialised)
    part: str = "model"  # what the file was meant to fill: "model" or "backbone"
    target: int = 0  # tensors of that part in the model
    class_rows: dict[str, int] = field(default_factory=dict)  # user class -> the file's head row kept for it

    @property
    def filled(self) -> int:
        """Tensors of the part loaded as they are, BatchNorm step counters left out (they are not weights)."""
        return sum(not k.endswith(_COUNTER) for k in self.loaded)

    @property
    def fill(self) -> float:
        """Share of the part's tensors the file filled."""
        return self.filled / self.target if self.target else 0.0

    @property
    def complete(self) -> bool:
        return not (self.reinitialised or self.unexpected or self.missing)

    def summary(self) -> str:
        part = f" (filled {self.filled} of the {self.target} of the {self.part})" if self.target else ""
        lines = [f"{self.source} ({self.layout}): loaded {len(self.loaded)} tensors{part}"]
        if self.class_rows:
            kept = ", ".join(self.class_rows)
            lines.append(f"  class-head rows kept from the file for {len(self.class_rows)} class(es): {kept}")
        for label, keys in (
            ("re-initialised (shape differs, e.g. class count)", self.reinitialised),
            ("ignored (not in this model)", self.unexpected),
            ("missing from the file (kept as initialised)", self.missing),
        ):
            if keys:
                shown = ", ".join(keys[:6]) + (f", ... ({len(keys) - 6} more)" if len(keys) > 6 else "")
                lines.append(f"  {label}: {len(keys)}: {shown}")
        return "\n".join(lines)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file safely; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors come in many types
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if refused:
            # A real checkpoint that also pickles Python objects (training args, custom classes): loading those
            # would run code from the file, so we refuse, and say how to keep only the weights if it is trusted.
            raise ValueError(
                f"{path} holds a Python object ({refused.group(1)}) beside its weights, and detcli only loads "
                "plain tensors (loading objects runs code from the file). If you trust the file, keep its "
                "weights: python -c \"import torch; c = torch.load('"
                f"{path}', weights_only=False); torch.save({{k: c[k] for k in ('model', 'ema') if k in c}}, "
                "'weights.pt')\""
            ) from None
        raise ValueError(
            f"{path} is not a PyTorch checkpoint (truncated, corrupt, or another format): expected a .pt/.pth "
            "saved by detcli (runs/NAME/best.pt) or by the official D-FINE"
        ) from None


def extract_state_dict(ckpt: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    """The model weights inside a checkpoint, whatever its layout: (state_dict, layout name)."""
    if ckpt.get("format") == FORMAT:
        return ckpt["model"], "detcli"
    ema = ckpt.get("ema")
    if isinstance(ema, dict) and isinstance(ema.get("module"), dict):
        return ema["module"], "official-ema"
    if isinstance(ckpt.get("model"), dict):
        return ckpt["model"], "official"
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        if any(k.startswith(_STAGE1) for k in ckpt) and not any(k.startswith(BACKBONE) for k in ckpt):
            # an ImageNet HGNetv2 file (PPHGNetV2_B*_stage1.pth): the backbone module's own keys
            return {BACKBONE + k: v for k, v in ckpt.items()}, "hgnetv2-stage1"
        return ckpt, "state_dict"
    raise ValueError(
        "unrecognised checkpoint layout: expected {'model': ...}, {'ema': {'module': ...}} or a state dict"
    )


def load_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    part: str = "model",
    class_names: list[str] | None = None,
    min_fill: float | None = None,
) -> LoadReport:
    """Load official or detcli weights into `model` (or only its backbone, `part="backbone"`).

    Tensors whose shape differs are left re-initialised, except that with `class_names` the class-head rows of
    classes the file's class set also names (COCO, Objects365) are copied from the file. With `min_fill`, a file
    that fills less than that share of the part's tensors raises WeightsMismatch and the model is left as it was.
    """
    state, layout = extract_state_dict(read_checkpoint(path))
    own = model.state_dict()
    if part == "backbone":
        own = {k: v for k, v in own.items() if k.startswith(BACKBONE)}
        state = {k: v for k, v in state.items() if k.startswith(BACKBONE)}
    # BatchNorm's step counters are not weights (a converted or frozen-norm file has none): they do not count
    report = LoadReport(str(path), layout, part=part, target=sum(not k.endswith(_COUNTER) for k in own))
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.reinitialised.append(key)
        else:
            # keep the model's dtype (decoder.reg_scale is int64 in official files and stays so)
            usable[key] = value.to(own[key].dtype)
            report.loaded.append(key)
    report.missing = [k for k in own if k not in state and not k.endswith(_COUNTER)]
    if min_fill is not None and report.fill < min_fill:
        raise WeightsMismatch(_mismatch_message(report, min_fill))
    if class_names and report.reinitialised:
        from engine.models.class_rows import keep_class_rows

        rows, report.class_rows = keep_class_rows(state, own, report.reinitialised, class_names)
        usable.update(rows)
    model.load_state_dict(usable, strict=False)
    return report


def _mismatch_message(report: LoadReport, min_fill: float) -> str:
    """One line: how little the file filled, and the likely reason."""
    if report.layout == "hgnetv2-stage1" and report.part == "model":
        why = "it holds an ImageNet backbone only: give it as model.backbone_pretrained"
    elif report.part == "backbone" and report.target and not report.loaded and not report.reinitialised:
        why = "it holds no HGNetv2 backbone tensors"
    elif len(report.reinitialised) > report.filled:
        why = f"{len(report.reinitialised)} of its tensors have other shapes: is it for another model size?"
    else:
        why = "its tensor names are not this model's: is it a D-FINE / HGNetv2 file?"
    return (
        f"{report.source} fills {report.filled} of the {report.target} tensors of the {report.part} "
        f"({report.fill:.0%}, needs {min_fill:.0%}); {why}"
    )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    class_names: list[str],
    imgsz: tuple[int, int],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights + everything needed to rebuild the model, atomically (temp file, then rename)."""
    model = getattr(model, "module", model)  # unwrap DDP
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("save_checkpoint needs a detcli model (built by engine.models.build_model)")
    ckpt = {
        "format": FORMAT,
        "model": model.state_dict(),
        "model_config": dict(config),
        "class_names": list(class_names),
        "imgsz": [int(imgsz[0]), int(imgsz[1])],
        **(extra or {}),
    }
    return atomic_save(ckpt, path)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temp file in the same folder, then os.replace: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
