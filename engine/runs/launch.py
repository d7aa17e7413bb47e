"""Starting a training run: demo-data preparation, run creation or resume, and the multi-process launch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from engine.config import RunConfig, load_config
from engine.errors import TrainingFailed, UsageProblem
from engine.runs.store import RunStore

Echo = Callable[[str], None]


def prepare_data(cfg: RunConfig, echo: Echo) -> None:
    """Generate the synthetic demo dataset on first use (presets that set data.synth)."""
    from engine.data.synth import generate

    root = cfg.data.root
    if cfg.data.synth is not None and root is not None and not (Path(root) / "classes.txt").is_file():
        s = cfg.data.synth
        echo(f"generating the synthetic dataset at {root} ({s.images} images, {s.size}px, seed {s.seed})")
        generate(root, images=s.images, size=s.size, seed=s.seed)


def device_count(devices: str) -> int:
    """`0,1` -> 2 GPUs; `cpu:2` -> 2 CPU processes (gloo); anything else -> 1 process."""
    if devices.startswith("cpu:"):
        return int(devices.split(":", 1)[1])
    if "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    return 1


def resolve_config(
    store: RunStore,
    preset: str | None,
    config_file: str | Path | None,
    overrides: list[str],
    existing: str | None,
) -> tuple[RunConfig, dict | None]:
    """The config of a new run (preset + file + overrides), or of an existing run (resume / worker attach)."""
    if existing:
        run = store.resolve_run(existing)
        base = RunConfig.model_validate(run["config"])
        cfg_path = Path(run["dir"]) / "config.yaml"
        if not cfg_path.exists():
            cfg_path.write_text(base.to_yaml())
        return (load_config(config_file=cfg_path, overrides=overrides) if overrides else base), run
    if not (preset or config_file):
        raise UsageProblem("give --preset NAME or --config FILE (see `detcli presets list`)")
    return load_config(preset, config_file, overrides), None


def open_run(store: RunStore, cfg: RunConfig, run: dict | None, name: str | None) -> dict:
    """Create the run row and folder, or mark a stopped run as resumed; writes its config.yaml."""
    if run is not None:
        if run["status"] == "running":
            raise UsageProblem(f"run '{run['name']}' is still running (pid {run['pid']} on {run['host']})")
        store.resume_run(run["id"], epochs=cfg.train.epochs, config=cfg.model_dump(mode="json"))
    else:
        try:
            run = store.create_run(
                preset=cfg.preset,
                model=cfg.model.name,
                dataset=str(cfg.data.root) if cfg.data.root else None,
                config=cfg.model_dump(mode="json"),
                epochs=cfg.train.epochs,
                device=cfg.train.devices,
                name=name,
            )
        except ValueError as e:
            raise UsageProblem(str(e)) from None
    (Path(run["dir"]) / "config.yaml").write_text(cfg.to_yaml())
    return store.get_run(run["id"])


def launch_workers(runs_dir: Path, run: dict, procs: int, store: RunStore, echo: Echo) -> str:
    """Start `procs` workers with torchrun and wait; records and returns the run's final status."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "engine.runs.worker",
        "--runs-dir",
        str(runs_dir),
        run["name"],
    ]
    echo(f"launching {procs} processes: {' '.join(cmd[1:])}")
    code = subprocess.call(cmd)
    status = "finished" if code == 0 else ("interrupted" if code in (130, -2, -15) else "failed")
    store.finish_run(run["id"], status, error=None if code == 0 else f"workers exited with code {code}")
    if code and status == "failed":
        raise TrainingFailed(f"distributed training failed (exit {code}); see the output above")
    return status
