"""Which precision an OpenVINO graph runs in, decided on purpose rather than left to the plugin's default.

The rule: an f16 request runs in f16 only where the device has native f16 arithmetic (OpenVINO lists FP16 in its
OPTIMIZATION_CAPABILITIES: iGPUs, CPUs with AVX512-FP16/AMX-FP16, ARM); elsewhere it runs in f32. It never becomes
bf16 silently: bf16 keeps 8 significant bits against f16's 11, so a coordinate near 640 px moves in 2-4 px steps
in bf16 and ~0.3 px in f16 — too coarse for box regression. bf16 runs only when asked for by name, and only where
the device has it (BF16 in its capabilities); otherwise f32.
"""

from __future__ import annotations

from typing import Any

# OpenVINO element-type names -> the names detcli prints and stores
_NAMES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8", "u8": "int8"}


def choose_precision(requested: str | None, capabilities: list[str] | set[str]) -> str:
    """The INFERENCE_PRECISION_HINT to pass for `requested` (None, f32, f16, bf16) on a device with `capabilities`."""
    caps = {c.upper() for c in capabilities}
    req = (requested or "f32").lower().replace("fp", "f")
    if req == "f16":
        return "f16" if "FP16" in caps else "f32"
    if req == "bf16":
        return "bf16" if "BF16" in caps else "f32"
    if req == "f32":
        return "f32"
    raise ValueError(f"unknown precision '{requested}': use f32, f16 or bf16")


def device_capabilities(core: Any, device: str) -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES for `device` (empty when the device does not report them)."""
    try:
        return list(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except RuntimeError:
        return []


def compiled_precision(compiled: Any) -> str:
    """The precision a compiled model really runs (read back from it), as fp32 / fp16 / bf16."""
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    except RuntimeError:
        return "unknown"
    name = getattr(hint, "get_type_name", lambda: str(hint))()
    return _NAMES.get(str(name).lower(), str(name).lower())


def runtime_precisions(compiled: Any) -> set[str]:
    """The float precisions the compiled graph's nodes execute in (from the runtime model's rt_info)."""
    found = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info:
            p = str(info["runtimePrecision"].astype(str)).lower()
            if p in ("f32", "f16", "bf16"):
                found.add(_NAMES[p])
    return found
