"""What the dashboard shows, read from the run history in one place (cheap when nothing changed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.runs import RunStore


@dataclass
class RunView:
    run: dict
    series: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


class DashboardData:
    """Polls the store; `changed()` is a cheap check so charts redraw only when the run moved."""

    def __init__(self, store: RunStore, clock: Callable[[], float] = time.time, max_points: int = 48):
        self.store, self.clock, self.max_points = store, clock, max_points
        self._sig: dict[int, tuple] = {}

    def runs(self) -> list[dict]:
        return self.store.list_runs()

    def signature(self, run_id: int) -> tuple:
        row = self.store.conn.execute(
            "SELECT r.status, r.last_step, r.epochs, r.heartbeat_at, (SELECT COUNT(*) FROM epochs e WHERE "
            "e.run_id = r.id) AS n_epochs, (SELECT MAX(id) FROM events v WHERE v.run_id = r.id) AS last_event "
            "FROM runs r WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        return tuple(row.values()) if row else ()

    def changed(self, run_id: int) -> bool:
        sig = self.signature(run_id)
        if self._sig.get(run_id) == sig:
            return False
        self._sig[run_id] = sig
        return True

    def forget(self, run_id: int) -> None:
        """Force the next `changed()` to report a change (after a view option changed)."""
        self._sig.pop(run_id, None)

    def view(self, run_id: int) -> RunView:
        return RunView(
            self.store.get_run(run_id),
            self.store.step_series(run_id, self.max_points),
            self.store.epochs(run_id),
            self.store.events(run_id, 30),
        )


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "--"
    s = max(0, int(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def age(t: float | None, now: float) -> str:
    if not t:
        return "-"
    s = now - t
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{int(s // n)}{unit}"
    return f"{int(s)}s"


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider does."""
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out
