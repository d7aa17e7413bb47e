"""`detcli presets`: list the tuned presets and show what each one resolves to."""

from __future__ import annotations

import click

from detcli.errors import config_errors


@click.group("presets")
def presets_group() -> None:
    """Tuned settings per dataset type (presets/*.yaml)."""


@presets_group.command("list")
def list_cmd() -> None:
    """Name and purpose of every preset."""
    from rich.table import Table

    from detcli.console import make_console
    from engine.config import list_presets, presets_dir

    table = Table(title=f"presets in {presets_dir()}", title_justify="left")
    table.add_column("name", style="bold cyan")
    table.add_column("purpose")
    for name, purpose in list_presets():
        table.add_row(name, purpose)
    make_console().print(table)


@presets_group.command("show")
@click.argument("name")
@click.argument("overrides", nargs=-1)
def show_cmd(name: str, overrides: tuple[str, ...]) -> None:
    """The resolved config of preset NAME (plus any k=v overrides); keys the preset changes are highlighted."""
    from rich.syntax import Syntax

    from detcli.console import make_console
    from engine.config import RunConfig, config_diff, load_config

    with config_errors():
        cfg = load_config(name, overrides=overrides)
    changed = config_diff(RunConfig(), cfg)
    changed.pop("preset", None)
    console = make_console()
    console.print(Syntax(cfg.to_yaml(), "yaml", theme="ansi_dark", background_color="default"))
    console.print(f"[bold]{len(changed)} keys differ from the defaults:[/bold]")
    for key, (default, value) in changed.items():
        console.print(f"  [yellow]{key}[/yellow]: {default!r} -> [bold green]{value!r}[/bold green]")


COMMANDS = [presets_group]
