"""Console progress for training: a rich bar on a terminal, plain lines when output is a file or pipe.

nohup/CI logs must not fill with bar redraws, so without a TTY we print one line every 25% of an epoch.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TrainProgress:
    def __init__(self, epochs: int, enabled: bool = True, tty: bool | None = None):
        self.epochs, self.enabled = epochs, enabled
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.console = Console()
        self.progress: Progress | None = None
        self.task = None
        self.total = 0
        self.next_mark = 0.25

    def start_epoch(self, epoch: int, total: int) -> None:
        if not self.enabled:
            return
        self.total, self.next_mark, self.epoch = total, 0.25, epoch
        self.t0 = time.monotonic()
        if self.tty:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=total, epoch=f"{epoch + 1}/{self.epochs}", info=""
            )

    def update(self, done: int, info: str) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=done, info=info)
        elif self.total and done / self.total >= self.next_mark:
            print(f"epoch {self.epoch + 1}/{self.epochs} {done}/{self.total} {info}", flush=True)
            while done / self.total >= self.next_mark:
                self.next_mark += 0.25

    def end_epoch(self, line: str) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        self.console.print(line) if self.tty else print(line, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(text) if self.tty else print(text, flush=True)
