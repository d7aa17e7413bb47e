"""The run history (SQLite via sqlite-utils): runs, steps, epochs, events, artifacts, benchmarks."""

from engine.runs.store import DB_NAME, STATUSES, RunNotFound, RunStore, StepLogger

__all__ = ["DB_NAME", "STATUSES", "RunNotFound", "RunStore", "StepLogger"]
