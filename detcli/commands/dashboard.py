"""`detcli dashboard`: the live terminal dashboard (works over plain SSH; polls the run history)."""

from __future__ import annotations

import click


@click.command("dashboard")
@click.argument("run", required=False)
@click.option("--interval", type=float, default=1.5, show_default=True, help="Seconds between polls.")
@click.pass_context
def dashboard_cmd(ctx: click.Context, run: str | None, interval: float) -> None:
    """Watch runs live: loss, LR, memory, throughput, ETA, per-epoch metrics, events. q quits.

    Training and dashboard are separate processes: closing this never touches training.
    """
    from detcli.cli import runs_dir_from
    from detcli.errors import run_errors
    from detcli.tui import run_dashboard
    from engine.runs import RunStore

    runs_dir = runs_dir_from(ctx)
    if run is not None:  # an unknown name is an error here, not a dashboard silently showing another run
        with RunStore.open(runs_dir) as store, run_errors():
            store.resolve_run(run)
    run_dashboard(runs_dir, run=run, interval=interval)


COMMANDS = [dashboard_cmd]
