"""engine: the detcli library (data, models, training, metrics, export, inference, run history).

Never imports click or textual: usable from plain Python. The public calls (`engine.train`, `engine.load`, ...)
are imported on first use so `import engine` stays cheap.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {
    "train": "engine.api",
    "load": "engine.api",
    "Model": "engine.api",
    "Prediction": "engine.api",
    "TrainResult": "engine.api",
    "Detections": "engine.infer.processing",
    "DetcliError": "engine.errors",
    "UsageProblem": "engine.errors",
    "ModelNotFound": "engine.errors",
    "TrainingFailed": "engine.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'engine' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
