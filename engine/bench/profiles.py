"""Device profiles (presets/devices/*.yaml): which backends, devices and precision a target machine uses."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.config import presets_dir
from engine.errors import UsageProblem


class ProfileError(UsageProblem):
    """A profile that cannot run here; the message says what is missing."""


@dataclass
class DeviceProfile:
    name: str
    description: str
    backends: list[str]
    options: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, shown to the user


def profiles_dir() -> Path:
    return presets_dir() / "devices"


def list_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_profile(name: str, here: bool = True) -> DeviceProfile:
    """Load a profile and, with `here`, resolve it for this machine (auto choice, iGPU fallback, CUDA
    requirement); without, as written, for a benchmark on another machine (the target falls back itself)."""
    path = profiles_dir() / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_profiles(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ProfileError(f"unknown device profile '{name}'{hint}; available: {', '.join(list_profiles())}")
    data = yaml.safe_load(path.read_text()) or {}
    if data.get("auto") and here:
        resolved = load_profile("cuda" if _cuda() else "cpu")
        resolved.notes.insert(0, f"auto: using the '{resolved.name}' profile")
        return resolved
    if data.get("requires") == "cuda" and here and not _cuda():
        raise ProfileError(
            f"device profile '{name}' needs an NVIDIA GPU with CUDA (and TensorRT), and none is "
            "visible here: run on that machine, or use --device cpu / --device n100"
        )
    prof = DeviceProfile(
        name,
        data.get("description", ""),
        list(data.get("backends", [])),
        {k: v for k, v in data.items() if isinstance(v, dict)},
    )
    ov = prof.options.get("openvino")
    if ov and ov.get("device") == "GPU" and here:
        from engine.infer.openvino_core import core

        if "GPU" not in core().available_devices:
            fallback = ov.get("fallback_device", "CPU")
            prof.notes.append(
                f"no Intel GPU visible to OpenVINO on this machine: falling back to {fallback} "
                "(these are not iGPU numbers)"
            )
            prof.options["openvino"] = {**ov, "device": fallback, "precision_hint": None}
    return prof
