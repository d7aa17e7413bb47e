"""`detcli train`: train a detector from a preset/config, recorded in the run history."""

from __future__ import annotations

import os
from pathlib import Path

import click

from detcli.errors import config_errors, engine_errors, run_errors, weights_errors


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
    from engine.api import train

    runs_dir = runs_dir_from(ctx)
    rank = int(os.environ.get("RANK", "0"))
    echo = click.echo if rank == 0 else (lambda *a, **k: None)
    fit = (
        (lambda trainer: _train_with_tui(trainer, runs_dir, trainer.run["name"]))
        if tui and rank == 0
        else None
    )
    with config_errors(), run_errors(), engine_errors(), weights_errors():
        result = train(
            preset=preset,
            overrides=list(overrides),
            runs_dir=runs_dir,
            name=name,
            resume=resume,
            config_file=config_file,
            echo=echo,
            attach=attach,
            fit=fit,
        )
    if result is not None and result.status == "interrupted":
        ctx.exit(130)


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
