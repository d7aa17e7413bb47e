"""`detcli train`: train a detector from a preset/config, recorded in the run history."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from detcli.errors import config_errors, run_errors, weights_errors


def _prepare_data(cfg, echo) -> None:
    """Generate the synthetic demo dataset on first use (presets that set data.synth)."""
    from engine.data.synth import generate

    root = cfg.data.root
    if cfg.data.synth is not None and root is not None and not (Path(root) / "classes.txt").is_file():
        s = cfg.data.synth
        echo(f"generating the synthetic dataset at {root} ({s.images} images, {s.size}px, seed {s.seed})")
        generate(root, images=s.images, size=s.size, seed=s.seed)


def _device_count(devices: str) -> int:
    """`0,1` -> 2 GPUs; `cpu:2` -> 2 CPU processes (gloo); anything else -> 1 process."""
    if devices.startswith("cpu:"):
        return int(devices.split(":", 1)[1])
    if "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    return 1


@click.command("train")
@click.option("--preset", default=None, help="Preset name (see `detcli presets list`) or a YAML path.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A config YAML (e.g. a run's config.yaml) applied over the preset.",
)
@click.option("--name", default=None, help="Run name (default: <preset>-<n>).")
@click.option(
    "--resume", "resume", default=None, metavar="RUN", help="Continue a stopped run where it left off."
)
@click.option("--attach", default=None, hidden=True, help="Internal: a torchrun worker joining RUN.")
@click.option("--tui", is_flag=True, help="Watch the run in the dashboard while it trains (same terminal).")
@click.argument("overrides", nargs=-1)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    preset: str | None,
    config_file: str | None,
    name: str | None,
    resume: str | None,
    attach: str | None,
    tui: bool,
    overrides: tuple[str, ...],
) -> None:
    """Train a D-FINE detector. Overrides are dotted keys: `train.epochs=50 model.name=dfine-s`.

    Multi-GPU: `train.devices=0,1` launches one process per GPU (torchrun); `train.devices=cpu:2` runs two
    CPU processes (gloo), mainly to test distributed training without GPUs.
    """
    from detcli.cli import runs_dir_from
    from engine.config import RunConfig, load_config
    from engine.runs import RunStore
    from engine.train.trainer import Trainer, TrainingStopped
    from engine.weights import WeightsError

    runs_dir = runs_dir_from(ctx)
    store = RunStore.open(runs_dir)
    is_worker = attach is not None
    rank = int(os.environ.get("RANK", "0"))
    echo = click.echo if rank == 0 else (lambda *a, **k: None)

    with config_errors(), run_errors():
        if resume or attach:
            run = store.resolve_run(resume or attach)
            base = RunConfig.model_validate(run["config"])
            cfg_path = Path(run["dir"]) / "config.yaml"
            if not cfg_path.exists():
                cfg_path.write_text(base.to_yaml())
            cfg = load_config(config_file=cfg_path, overrides=overrides) if overrides else base
        else:
            if not (preset or config_file):
                raise click.UsageError("give --preset NAME or --config FILE (see `detcli presets list`)")
            cfg = load_config(preset, config_file, overrides)
    if rank == 0:
        _prepare_data(cfg, echo)

    if not is_worker:
        if resume:
            if run["status"] == "running":
                raise click.UsageError(
                    f"run '{run['name']}' is still running (pid {run['pid']} on {run['host']})"
                )
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
                raise click.UsageError(str(e)) from None
        (Path(run["dir"]) / "config.yaml").write_text(cfg.to_yaml())
        echo(f"run {run['name']} -> {run['dir']}  (watch it: detcli dashboard {run['name']})")
        procs = _device_count(cfg.train.devices)
        if procs > 1:
            _launch_workers(ctx, run, procs, store)
            return

    run = store.get_run(run["id"])
    try:
        trainer = Trainer(
            cfg,
            store if rank == 0 else None,
            run,
            resume=bool(resume or (attach and (Path(run["dir"]) / "last.pt").exists())),
        )
        if tui and rank == 0:
            summary = _train_with_tui(trainer, runs_dir, run["name"])
        else:
            summary = trainer.fit()
    except TrainingStopped as e:
        if rank == 0 and not is_worker:
            store.finish_run(run["id"], "failed", error=str(e))
        raise click.ClickException(str(e)) from None
    except WeightsError as e:  # the starting weights cannot serve: refused before any training step
        if rank == 0 and not is_worker:
            store.finish_run(run["id"], "failed", error=str(e))
        with weights_errors():
            raise
    except Exception as e:
        if rank == 0 and not is_worker:
            store.finish_run(run["id"], "failed", error=f"{type(e).__name__}: {e}")
        raise
    if is_worker:
        return
    store.finish_run(run["id"], summary.status)
    if summary.best_path:
        echo(f"best epoch {summary.best_epoch + 1}: {cfg.eval.best_metric} = {summary.best_metric:.4f}")
        echo(f"weights: {summary.best_path} (best), {Path(run['dir']) / 'last.pt'} (last)")
    echo(
        f"{summary.status}: {summary.epochs_done} epoch(s), {summary.steps} steps in {summary.seconds / 60:.1f} min"
    )
    if summary.status == "interrupted":
        echo(f"resume with: detcli train --resume {run['name']}")
        ctx.exit(130)


def _launch_workers(ctx: click.Context, run: dict, procs: int, store) -> None:
    """Start `procs` workers with torchrun; this process only waits and records the outcome."""
    from detcli.cli import runs_dir_from

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "detcli.cli",
        "--runs-dir",
        str(runs_dir_from(ctx)),
        "train",
        "--attach",
        run["name"],
    ]
    click.echo(f"launching {procs} processes: {' '.join(cmd[1:])}")
    code = subprocess.call(cmd)
    status = "finished" if code == 0 else ("interrupted" if code in (130, -2, -15) else "failed")
    store.finish_run(run["id"], status, error=None if code == 0 else f"workers exited with code {code}")
    if code:
        raise click.ClickException(f"distributed training failed (exit {code}); see the output above")


def _train_with_tui(trainer, runs_dir: Path, run_name: str):
    """Train in a background thread while the dashboard runs in this terminal."""
    import threading

    from detcli.tui import run_dashboard

    trainer.quiet = True
    result: dict = {}

    def work() -> None:
        try:
            result["summary"] = trainer.fit()
        except BaseException as e:  # surfaced after the dashboard closes
            result["error"] = e

    t = threading.Thread(target=work, daemon=True)
    t.start()
    run_dashboard(runs_dir, run=run_name)
    t.join()
    if "error" in result:
        raise result["error"]
    return result["summary"]


COMMANDS = [train_cmd]
