"""The `detcli` click group.

Commands live one module per group in `detcli/commands/`; each module exposes `COMMANDS`, a list of click
commands or groups. Discovery is by module listing so that adding a command never edits this file, and command
modules keep heavy imports (torch, cv2) inside their functions so that `detcli --help` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from pathlib import Path

import click

from detcli import __version__

DEFAULT_RUNS_DIR = "runs"


def _discover() -> dict[str, click.Command]:
    import detcli.commands as pkg

    found: dict[str, click.Command] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"detcli.commands.{info.name}")
        for cmd in getattr(module, "COMMANDS", []):
            found[cmd.name] = cmd
    return found


class DetcliGroup(click.Group):
    """Lists commands in a fixed, workflow order rather than alphabetically."""

    ORDER = (
        "data",
        "aug-preview",
        "train",
        "eval",
        "predict",
        "export",
        "bench",
        "runs",
        "dashboard",
        "presets",
        "weights",
        "checks",
    )

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(self.commands)
        return sorted(names, key=lambda n: (self.ORDER.index(n) if n in self.ORDER else len(self.ORDER), n))


@click.group(
    cls=DetcliGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="detcli")
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Run history folder (SQLite store + run artifacts). Env: DETCLI_RUNS_DIR. Default: ./{DEFAULT_RUNS_DIR}",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, runs_dir: Path | None, verbose: int) -> None:
    """detcli: train, evaluate, export and benchmark real-time object detectors (D-FINE).

    Every run is recorded in a local SQLite run history; watch it live with `detcli dashboard`.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["runs_dir"] = Path(runs_dir or os.environ.get("DETCLI_RUNS_DIR") or DEFAULT_RUNS_DIR)
    ctx.obj["verbose"] = verbose


for _cmd in _discover().values():
    cli.add_command(_cmd)


def runs_dir_from(ctx: click.Context) -> Path:
    """The run-history folder chosen by --runs-dir / DETCLI_RUNS_DIR for this invocation."""
    root = ctx.find_root()
    obj = root.obj or {}
    return Path(obj.get("runs_dir") or os.environ.get("DETCLI_RUNS_DIR") or DEFAULT_RUNS_DIR)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="detcli", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
