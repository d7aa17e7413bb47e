"""Pretrained weights: the official release files, their cache, their download and their verification."""

from engine.weights.errors import (
    UnknownWeights,
    WeightsCorrupt,
    WeightsError,
    WeightsMismatch,
    WeightsUnavailable,
)
from engine.weights.registry import WeightsEntry, backbone_for, get_entry, list_weights
from engine.weights.resolve import ResolvedWeights, cached_path, resolve_weights, url_for

__all__ = [
    "ResolvedWeights",
    "UnknownWeights",
    "WeightsCorrupt",
    "WeightsEntry",
    "WeightsError",
    "WeightsMismatch",
    "WeightsUnavailable",
    "backbone_for",
    "cached_path",
    "get_entry",
    "list_weights",
    "resolve_weights",
    "url_for",
]
