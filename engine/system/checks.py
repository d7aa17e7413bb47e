"""`detcli checks` in the engine: versions, devices per backend, the precision each runs, AMP, disk, what is missing.

Nothing here raises for a missing optional library: each finding is a row, and `usable` says whether detcli can
train and export on this machine at all (torch, ONNX Runtime and OpenVINO importable).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

# module -> (distribution name, install command, required for detcli to be usable)
LIBRARIES = {
    "detcli": ("detcli", "pip install -e .", True),
    "torch": ("torch", "pip install torch", True),
    "onnxruntime": ("onnxruntime", "pip install onnxruntime (or onnxruntime-gpu on an NVIDIA box)", True),
    "openvino": ("openvino", "pip install openvino", True),
    "tensorrt": ("tensorrt", "pip install 'detcli[tensorrt]'", False),
    "nncf": ("nncf", "pip install 'detcli[int8]'", False),
}


@dataclass
class Library:
    name: str
    version: str | None
    install: str
    required: bool


@dataclass
class Device:
    backend: str
    device: str
    detail: str
    precision: str  # what detcli would run there


@dataclass
class Disk:
    what: str
    path: str
    free_gb: float | None


@dataclass
class Report:
    libraries: list[Library]
    cuda: str | None
    cudnn: str | None
    devices: list[Device]
    amp: dict[str, str]  # dtype -> "ok" / the error / "no CUDA device"
    disk: list[Disk]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[Library]:
        return [lib for lib in self.libraries if lib.version is None]

    @property
    def usable(self) -> bool:
        return not any(lib.required for lib in self.missing)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["usable"] = self.usable
        d["missing"] = [{"name": m.name, "install": m.install} for m in self.missing]
        return d


def weights_cache_dir() -> Path:
    """DETCLI_WEIGHTS_DIR, else $XDG_CACHE_HOME/detcli/weights (default ~/.cache/detcli/weights)."""
    if os.environ.get("DETCLI_WEIGHTS_DIR"):
        return Path(os.environ["DETCLI_WEIGHTS_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "detcli" / "weights"


def library_version(module: str) -> str | None:
    """The installed version of `module`'s distribution, or None when it cannot be imported."""
    dist = LIBRARIES[module][0]
    try:
        importlib.import_module(module)
    except Exception:  # a broken install (missing CUDA libs for tensorrt) counts as missing too
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return getattr(importlib.import_module(module), "__version__", "unknown")


def _free_gb(path: Path) -> float | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the folder may not exist yet: report the disk it will be created on
    try:
        return round(shutil.disk_usage(probe).free / 1e9, 1)
    except OSError:
        return None


def amp_check(dtype_name: str) -> str:
    """A tiny forward/backward under CUDA autocast in `dtype_name` (fp16 with GradScaler): "ok" or the error."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return "not supported on this GPU"
    try:
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)
        ).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype is torch.float16)
        x = torch.randn(2, 3, 32, 32, device="cuda")
        with torch.autocast("cuda", dtype=dtype):
            loss = model(x).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        torch.cuda.synchronize()
        if not torch.isfinite(loss):
            return "loss not finite"
        return "ok"
    except Exception as e:  # report, do not crash: this is a diagnosis command
        return f"failed: {e}"


def _devices(versions: dict[str, str | None]) -> tuple[list[Device], list[str]]:
    devices: list[Device] = []
    notes: list[str] = []
    if versions["torch"]:
        import torch

        devices.append(Device("torch", "cpu", f"{torch.get_num_threads()} threads", "fp32"))
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append(
                Device(
                    "torch",
                    f"cuda:{i}",
                    f"{p.name}, {p.total_memory / 2**30:.1f} GiB",
                    "fp32 (AMP fp16/bf16)",
                )
            )
        if not torch.cuda.is_available():
            notes.append("no CUDA GPU visible to torch: training and inference run on the CPU")
    if versions["openvino"]:
        from engine.infer.openvino_core import core
        from engine.infer.precision import choose_precision, device_capabilities

        c = core()
        for dev in c.available_devices:
            caps = device_capabilities(c, dev)
            try:
                name = c.get_property(dev, "FULL_DEVICE_NAME")
            except RuntimeError:
                name = dev
            f16 = choose_precision("f16", caps)
            devices.append(
                Device(
                    "openvino",
                    dev,
                    f"{name}; capabilities {', '.join(caps)}",
                    f"fp32; an f16 request runs {'fp16' if f16 == 'f16' else 'fp32'}",
                )
            )
        if "GPU" not in c.available_devices:
            notes.append("no Intel GPU visible to OpenVINO (the n100 profile falls back to the CPU)")
    if versions["onnxruntime"]:
        import onnxruntime as ort

        for prov in ort.get_available_providers():
            if prov == "AzureExecutionProvider":
                continue  # a remote-call provider, not a device
            devices.append(Device("onnxruntime", prov, "", "fp32"))
    if versions["tensorrt"]:
        devices.append(Device("tensorrt", "cuda", f"TensorRT {versions['tensorrt']}", "fp16 (per layer)"))
    return devices, notes


def run_checks(runs_dir: Path, amp: bool = True) -> Report:
    """Inspect this machine; `amp` runs the tiny CUDA autocast forward/backward in fp16 and bf16."""
    versions = {m: library_version(m) for m in LIBRARIES}
    libs = [Library(m, versions[m], LIBRARIES[m][1], LIBRARIES[m][2]) for m in LIBRARIES]
    cuda = cudnn = None
    if versions["torch"]:
        import torch

        cuda = torch.version.cuda
        cudnn = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    devices, notes = _devices(versions)
    amp_res = {d: (amp_check(d) if versions["torch"] and amp else "skipped") for d in ("fp16", "bf16")}
    disk = [
        Disk("runs dir", str(runs_dir), _free_gb(Path(runs_dir))),
        Disk("weights cache", str(weights_cache_dir()), _free_gb(weights_cache_dir())),
    ]
    return Report(libs, cuda, cudnn, devices, amp_res, disk, notes)
