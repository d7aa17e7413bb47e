"""The official D-FINE release files (registry.json) and the class names their heads were trained on."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from engine.weights.errors import UnknownWeights

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WeightsEntry:
    """One official file: what it is, which model it fits, where it is published."""

    name: str
    file: str
    kind: str  # "detector" (a whole D-FINE) or "backbone" (an ImageNet HGNetv2, stage-1 layout)
    fits: str | None  # the model name(s) it loads into
    trained_on: str
    classes: str | None  # "coco" / "obj365": the class set of its head (see classes.json)
    licence: str
    url: str
    sha256: str | None  # pinned only where a published source states it
    bytes: int | None
    sha256_source: str | None
    backbone: str | None = None  # HGNetv2 variant of a backbone file (B0..B5)


@cache
def _registry() -> dict:
    return json.loads((_HERE / "registry.json").read_text())


@cache
def list_weights() -> tuple[WeightsEntry, ...]:
    """Every registry entry, in the registry's order."""
    return tuple(WeightsEntry(**e) for e in _registry()["weights"])


def get_entry(name: str) -> WeightsEntry:
    """The entry called `name` (case-insensitive, `_` for `-` accepted); UnknownWeights with did-you-mean."""
    key = name.strip().lower().replace("_", "-")
    for e in list_weights():
        if key in (e.name, e.file.lower().replace("_", "-")):
            return e
    raise UnknownWeights(
        f"unknown weights '{name}'{_did_you_mean(key)}; `detcli weights list` shows them all"
    )


def find_entry(name: str) -> WeightsEntry | None:
    """Like get_entry, but None for a name the registry does not know."""
    try:
        return get_entry(name)
    except UnknownWeights:
        return None


def _did_you_mean(key: str) -> str:
    names = [e.name for e in list_weights()]
    close = difflib.get_close_matches(key, names, n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def backbone_for(model_name: str) -> WeightsEntry:
    """The ImageNet backbone the official recipe starts `model_name` from (N/S: B0, M: B2, L: B4, X: B5)."""
    try:
        return get_entry(_registry()["size_backbone"][model_name])
    except KeyError:
        raise UnknownWeights(f"no ImageNet backbone is registered for model '{model_name}'") from None


@cache
def class_set(name: str) -> tuple[tuple[str, ...], int, int]:
    """(names, row offset, head rows) of a class set: 'coco' (80 rows) or 'obj365' (366 rows, offset 1)."""
    data = json.loads((_HERE / "classes.json").read_text())[name]
    return tuple(data["names"]), int(data["row_offset"]), int(data["rows"])


def class_set_for_rows(rows: int) -> str | None:
    """The official class set whose head has `rows` rows (80 -> coco, 366 -> obj365), else None."""
    for name in ("coco", "obj365"):
        if class_set(name)[2] == rows:
            return name
    return None
