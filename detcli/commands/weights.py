"""`detcli weights`: the official pretrained files, fetched into the cache and verified."""

from __future__ import annotations

import click

from detcli.errors import weights_errors

_MIRROR = click.option(
    "--mirror",
    metavar="URL",
    default=None,
    help="base URL holding the official file names (default: $DETCLI_WEIGHTS_MIRROR, else the official URL)",
)


@click.group("weights")
def weights_group() -> None:
    """Pretrained weights: list, download, path (cache: $DETCLI_WEIGHTS_DIR or ~/.cache/detcli/weights)."""


@weights_group.command("list")
def list_cmd() -> None:
    """Every official file: the name to type, what it fits, what it was trained on, whether it is cached."""
    from rich.table import Table

    from detcli.console import make_console
    from engine.weights import cached_path, list_weights
    from engine.weights.cache import recorded_sha256, weights_dir

    table = Table(title=f"weights (cache: {weights_dir()})", title_justify="left")
    for col in ("name", "file", "fits", "trained on", "cached (sha256)"):
        table.add_column(col, style="bold cyan" if col == "name" else None)
    for e in list_weights():
        path = cached_path(e)
        digest = recorded_sha256(path) if path.is_file() else None
        cached = (digest[:12] if digest else "yes") if path.is_file() else "-"
        table.add_row(e.name, e.file, e.fits or f"(HGNetv2-{e.backbone})", e.trained_on, cached)
    make_console().print(table)


@weights_group.command("download")
@click.argument("names", nargs=-1, required=True)
@_MIRROR
def download_cmd(names: tuple[str, ...], mirror: str | None) -> None:
    """Fetch NAMES into the cache (resumes a broken download); prints each file's path and SHA-256."""
    from engine.weights import get_entry, resolve_weights

    with weights_errors():
        for name in names:  # every name is checked before anything is fetched
            get_entry(name)
        for name in names:
            got = resolve_weights(name, mirror=mirror)
            how = "already cached" if got.source == "cache" else f"downloaded {got.bytes_fetched:,} bytes"
            click.echo(f"{got.name}: {got.path} ({how}) sha256 {got.sha256}")
            if got.entry and "Objects365" in got.entry.trained_on:  # non-commercial data terms: say so
                click.echo(f"  licence: {got.entry.licence}")


@weights_group.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Where NAME lives in the cache (to put a file there by hand); exit 1 when it is not there yet."""
    from engine.weights import cached_path, get_entry

    with weights_errors():
        path = cached_path(get_entry(name))
    click.echo(str(path))
    if not path.is_file():
        raise SystemExit(1)


COMMANDS = [weights_group]
