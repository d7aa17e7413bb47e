"""Pretrained weights: the registry of official D-FINE files, the download cache, and name -> file resolution.

`resolve_weights("dfine-s-coco")` returns a verified local file (downloaded once into `weights_dir()`);
a path to a file the user already has is returned as is. Loading into a model is `engine.models.pretrained`.
"""

from __future__ import annotations

from engine.weights.cache import weights_dir
from engine.weights.errors import (
    UnknownWeights,
    WeightsCorrupt,
    WeightsError,
    WeightsMismatch,
    WeightsUnavailable,
)
from engine.weights.registry import WeightsEntry, backbone_for, get_entry, list_weights
from engine.weights.resolve import (
    ResolvedWeights,
    add_to_cache,
    cached_file,
    file_url,
    looks_like_path,
    resolve_source,
    resolve_weights,
)

__all__ = [
    "ResolvedWeights",
    "UnknownWeights",
    "WeightsCorrupt",
    "WeightsEntry",
    "WeightsError",
    "WeightsMismatch",
    "WeightsUnavailable",
    "add_to_cache",
    "backbone_for",
    "cached_file",
    "file_url",
    "get_entry",
    "list_weights",
    "looks_like_path",
    "resolve_source",
    "resolve_weights",
    "weights_dir",
]
