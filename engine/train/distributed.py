"""torch.distributed glue: initialise from torchrun's environment, rank helpers, clean shutdown."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """True in a torchrun worker, even a world of one (TORCHELASTIC_RUN_ID is set by torchrun's agent)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def init_from_env(devices: str) -> bool:
    """Join the process group when launched by torchrun; gloo on CPU, nccl on CUDA.

    A world of one joins too when torchrun started it: on a one-GPU box that is the only way to run the NCCL
    and DistributedDataParallel code paths (what `just gpu-check` proves)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not launched_by_torchrun():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and not devices.startswith("cpu") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return True


def backend() -> str | None:
    """The process group's backend ('nccl', 'gloo'), None outside one."""
    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
