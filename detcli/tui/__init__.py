"""The Textual dashboard over the run history (polls SQLite: no server, works over plain SSH)."""

from __future__ import annotations

from pathlib import Path


def run_dashboard(runs_dir: str | Path, run: str | None = None, interval: float = 1.5) -> None:
    """Open the dashboard in this terminal (blocks until the user quits)."""
    from detcli.tui.app import DashboardApp

    DashboardApp(Path(runs_dir), run=run, interval=interval).run()
