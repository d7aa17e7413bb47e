"""Checking that a file is the weights it claims to be: tensors only, with the keys and shapes of its model."""

from __future__ import annotations

from pathlib import Path

from engine.weights.errors import WeightsCorrupt
from engine.weights.registry import WeightsEntry, class_set

MIN_MATCH = 0.9  # share of the model's tensors the file must fill with the right shape


def verify_structure(path: Path, entry: WeightsEntry) -> int:
    """Raise WeightsCorrupt unless `path` loads as tensors matching `entry`'s model; returns the tensor count."""
    from engine.models.checkpoint import extract_state_dict, read_checkpoint

    try:
        state, _layout = extract_state_dict(read_checkpoint(path))
    except (ValueError, FileNotFoundError) as e:
        raise WeightsCorrupt(f"{path} is not the weights file {entry.file}: {e}") from None
    expected = _expected_shapes(entry)
    if expected is None:  # a backbone variant no detcli model uses: the tensor-only check is all we can do
        return len(state)
    matched = sum(1 for k, shape in expected.items() if k in state and tuple(state[k].shape) == shape)
    if matched < MIN_MATCH * len(expected):
        raise WeightsCorrupt(
            f"{path} does not hold {entry.name}: only {matched} of the {len(expected)} tensors of "
            f"{entry.fits} ({entry.kind}) are there with the right shape"
        )
    return len(state)


def _expected_shapes(entry: WeightsEntry) -> dict[str, tuple[int, ...]] | None:
    from engine.models import build_model
    from engine.models.dfine.hgnetv2 import ARCHS, HGNetv2

    if entry.kind == "backbone":
        if entry.backbone not in ARCHS:
            return None
        # stage-1 files come from plain BatchNorm backbones; the layout (names, shapes) is the same either way
        model = HGNetv2(entry.backbone, use_lab=entry.backbone in ("B0", "B1", "B2", "B3"))
    else:
        rows = class_set(entry.classes)[2] if entry.classes else 80
        model = build_model(entry.fits, num_classes=rows)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
