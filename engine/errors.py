"""Typed errors of the public API; each carries the message a user acts on. The CLI maps them to exit codes."""

from __future__ import annotations


class DetcliError(Exception):
    """Base of every error the engine raises on purpose (bad input, a failed run); never a bug."""

    exit_code = 1


class UsageProblem(DetcliError, ValueError):
    """The call itself is wrong (missing preset, run still running, duplicate name): exit code 2."""

    exit_code = 2


class ModelNotFound(DetcliError, FileNotFoundError):
    """`engine.load` got something that is neither a model file, an export nor a run name."""

    exit_code = 1


class TrainingFailed(DetcliError, RuntimeError):
    """Training stopped for a reason the user must act on, or its workers failed (the message says which)."""

    exit_code = 1


class EvaluationFailed(DetcliError, RuntimeError):
    """An evaluation could not run: its dataset or split is missing or unreadable (the message names it)."""

    exit_code = 1


class ExportFailed(DetcliError, RuntimeError):
    """An export could not be made (a runtime missing, an unsupported combination): the message says which."""

    exit_code = 1


class BenchFailed(DetcliError, RuntimeError):
    """No backend the profile asks for could run on this machine."""

    exit_code = 1
