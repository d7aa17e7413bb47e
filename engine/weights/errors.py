"""What can go wrong finding, fetching or loading pretrained weights; the CLI maps each kind to an exit code."""

from __future__ import annotations


class WeightsError(ValueError):
    """Base class: a weights problem the user can act on (the message says what to do)."""


class UnknownWeights(WeightsError):
    """A name that is neither a registry entry nor an existing file (a usage error: exit 2)."""


class WeightsUnavailable(WeightsError):
    """The file could not be fetched (offline, HTTP error, connection dropped for good): exit 1."""


class WeightsCorrupt(WeightsError):
    """What arrived is not the file (checksum, truncated, an HTML page, not a checkpoint): removed, exit 1."""


class WeightsMismatch(WeightsError):
    """The file fills too little of the part it is meant for: refused before training starts (exit 2)."""
