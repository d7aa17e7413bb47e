"""engine: the detcli library (data, models, training, metrics, export, inference, run history).

Never imports click or textual: usable from plain Python. The public calls (`engine.train`, `engine.load`,
`engine.evaluate`, `engine.export`, `engine.bench`, ...) are imported on first use so `import engine` stays
cheap (the remote bench runner imports this package with only numpy and OpenCV at hand).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_PUBLIC = {
    "train": "engine.api",
    "load": "engine.api",
    "evaluate": "engine.api",
    "export": "engine.api",
    "bench": "engine.api",
    "Model": "engine.api",
    "Prediction": "engine.api",
    "TrainResult": "engine.api",
    "Detections": "engine.infer.processing",
    "DetcliError": "engine.errors",
    "UsageProblem": "engine.errors",
    "ModelNotFound": "engine.errors",
    "TrainingFailed": "engine.errors",
    "EvaluationFailed": "engine.errors",
    "ExportFailed": "engine.errors",
    "BenchFailed": "engine.errors",
}
# public calls that share their name with a subpackage (engine/train, engine/export, engine/bench)
_SHADOWED = ("train", "export", "bench")

__all__ = sorted(_PUBLIC)


class _CallAndPackage:
    """`engine.train` etc.: calling it is the public call; its attributes are the subpackage's, so
    `engine.train.trainer` and `import engine.train.trainer as t` keep working.

    The call is imported on first use: the remote bench runner imports engine.bench with no engine.api shipped."""

    def __init__(self, name: str):
        self._name = name

    @property
    def _call(self) -> Any:
        return getattr(importlib.import_module(_PUBLIC[self._name]), self._name)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]  # help(engine.train) shows the call's docstring
        return self._call.__doc__

    @property
    def __wrapped__(self) -> Any:  # inspect.signature(engine.train) is the call's
        return self._call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(f"engine.{self._name}"), attr)

    def __repr__(self) -> str:
        return f"<engine.{self._name}: the public call (and the engine.{self._name} package)>"


class _Engine(types.ModuleType):
    # Importing engine/train/... binds the subpackage to `engine.train`, which would hide the public call after
    # the first training; the call stays bound, and the subpackage is reached through it.
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            value = _CallAndPackage(name)
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'engine' has no attribute '{name}'")
    value = (
        _CallAndPackage(name) if name in _SHADOWED else getattr(importlib.import_module(_PUBLIC[name]), name)
    )
    globals()[name] = value
    return value


sys.modules[__name__].__class__ = _Engine
