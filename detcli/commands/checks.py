"""`detcli checks`: what a user runs first on a new box (libraries, devices, precisions, AMP, disk, what is missing)."""

from __future__ import annotations

import json

import click


@click.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-amp", is_flag=True, help="Skip the tiny CUDA autocast forward/backward.")
@click.pass_context
def checks_cmd(ctx: click.Context, as_json: bool, no_amp: bool) -> None:
    """Versions, every device each backend can use and the precision it runs, AMP fp16/bf16, free disk, and
    what is missing with the command to install it. Exits 0 when detcli is usable here, 1 when not."""
    from detcli.cli import runs_dir_from
    from engine.system.checks import run_checks

    report = run_checks(runs_dir_from(ctx), amp=not no_amp)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    if not report.usable:
        ctx.exit(1)


def _print(report) -> None:
    from rich.markup import escape
    from rich.table import Table

    from detcli.console import make_console

    console = make_console()
    t = Table(title="libraries", title_justify="left")
    for c in ("library", "version", "install"):
        t.add_column(c)
    for lib in report.libraries:
        t.add_row(lib.name, lib.version or "[red]missing[/red]", "" if lib.version else escape(lib.install))
    console.print(t)
    console.print(f"CUDA {report.cuda or '-'}  cuDNN {report.cudnn or '-'}")
    t = Table(title="devices", title_justify="left")
    for c in ("backend", "device", "detail", "precision"):
        t.add_column(c)
    for d in report.devices:
        t.add_row(d.backend, d.device, escape(d.detail), d.precision)
    console.print(t)
    console.print("AMP: " + "  ".join(f"{k} {v}" for k, v in report.amp.items()))
    for d in report.disk:
        free = f"{d.free_gb:.1f} GB free" if d.free_gb is not None else "unknown"
        console.print(f"{d.what}: {d.path} ({free})")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for m in report.missing:
        console.print(f"[yellow]missing:[/yellow] {m.name}: {escape(m.install)}")
    console.print("usable: yes" if report.usable else "[red]usable: no[/red] (install what is missing above)")


COMMANDS = [checks_cmd]
