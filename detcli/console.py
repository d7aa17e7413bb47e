"""The rich Console every command prints through."""

from __future__ import annotations

from rich.console import Console

# Piped, logged or under nohup, rich falls back to 80 columns and squeezes the wide tables (per-class metrics,
# latency breakdowns) into truncated cells; a log file has no width limit.
PIPED_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A Console for the terminal, or 160 columns wide when the output is not a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, PIPED_WIDTH)
    return console
