"""What a training run starts from: `model.pretrained` and `model.backbone_pretrained`, resolved and loaded.

`backbone_pretrained: true` is the official recipe (the size's ImageNet HGNetv2); a whole checkpoint given as
`model.pretrained` brings its own backbone, so the ImageNet one is then not fetched. Each load must fill at least
90% of its part, or the run is refused before it trains (WeightsMismatch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from engine.models.checkpoint import MIN_FILL, LoadReport, load_checkpoint
from engine.weights.errors import WeightsError, WeightsMismatch
from engine.weights.registry import backbone_for
from engine.weights.resolve import ResolvedWeights, resolve_weights


@dataclass
class PretrainedLoad:
    """One file loaded into the model, and what it filled."""

    setting: str  # "model.pretrained" or "model.backbone_pretrained"
    weights: ResolvedWeights
    report: LoadReport

    def provenance(self) -> dict[str, Any]:
        """JSON-ready record of the run's starting weights (stored as a run artifact)."""
        r = self.report
        return {
            "setting": self.setting,
            **self.weights.provenance(),
            "layout": r.layout,
            "part": r.part,
            "loaded": r.filled,
            "of": r.target,
            "reinitialised": r.reinitialised,
            "ignored": len(r.unexpected),
            "class_rows_kept": r.class_rows,
        }

    def line(self) -> str:
        """One line for the run's events and the console."""
        r = self.report
        extra = f", {len(r.reinitialised)} re-initialised" if r.reinitialised else ""
        kept = f", head rows kept for {len(r.class_rows)} class(es)" if r.class_rows else ""
        return (
            f"{self.setting}: {self.weights.name} (sha256 {self.weights.sha256[:12]}) filled {r.filled} "
            f"of {r.target} {r.part} tensors{extra}{kept}"
        )


def backbone_source(model_name: str, setting: bool | str | None) -> str | None:
    """The file `model.backbone_pretrained` asks for: True -> the size's ImageNet backbone name."""
    if setting is True:
        return backbone_for(model_name).name
    if setting in (False, None, ""):
        return None
    return str(setting)


def load_pretrained(
    model: nn.Module,
    source: str,
    *,
    part: str = "model",
    class_names: list[str] | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> PretrainedLoad:
    """Resolve `source` (a registry name or a path), load it into `part`, refuse it if it fills < 90%."""
    weights = resolve_weights(source, mirror=mirror, progress=progress)
    try:
        report = load_checkpoint(model, weights.path, part=part, class_names=class_names, min_fill=MIN_FILL)
    except WeightsError:
        raise
    except (ValueError, FileNotFoundError) as e:  # not a checkpoint at all, or one holding Python objects
        raise WeightsMismatch(str(e)) from None
    setting = "model.pretrained" if part == "model" else "model.backbone_pretrained"
    return PretrainedLoad(setting, weights, report)


def apply_pretrained(
    model: nn.Module, model_cfg: Any, class_names: list[str], *, progress: bool = True
) -> list[PretrainedLoad]:
    """Load what a ModelConfig asks for: the backbone first, then a whole checkpoint over it."""
    loads = []
    backbone = model_cfg.backbone_pretrained
    if model_cfg.pretrained and backbone is True:
        backbone = None  # the checkpoint's own backbone replaces the ImageNet one: no need to fetch it
    source = backbone_source(model_cfg.name, backbone)
    if source:
        loads.append(load_pretrained(model, source, part="backbone", progress=progress))
    if model_cfg.pretrained:
        loads.append(
            load_pretrained(model, str(model_cfg.pretrained), class_names=class_names, progress=progress)
        )
    return loads
