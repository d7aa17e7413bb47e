"""Turning engine errors into clean CLI errors (a message and an exit code, never a traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click


@contextmanager
def config_errors() -> Iterator[None]:
    """Config problems are usage errors: exit 2 with the engine's message (key, value, did-you-mean)."""
    from engine.config import ConfigError

    try:
        yield
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


@contextmanager
def run_errors() -> Iterator[None]:
    """An unknown run name is a usage error naming close matches."""
    from engine.runs import RunNotFound

    try:
        yield
    except RunNotFound as e:
        raise click.UsageError(str(e)) from None


@contextmanager
def weights_errors() -> Iterator[None]:
    """A weights name or a file that cannot serve is a usage error (exit 2); a fetch that fails is exit 1."""
    from engine.weights import UnknownWeights, WeightsError, WeightsMismatch

    try:
        yield
    except (UnknownWeights, WeightsMismatch) as e:
        raise click.UsageError(str(e)) from None
    except WeightsError as e:
        raise click.ClickException(str(e)) from None


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's typed errors: a wrong call is a usage error (exit 2), anything else a failure (exit 1)."""
    from engine.errors import DetcliError

    try:
        yield
    except DetcliError as e:
        if e.exit_code == 2:
            raise click.UsageError(str(e)) from None
        raise click.ClickException(str(e)) from None


@contextmanager
def dataset_errors() -> Iterator[None]:
    """A dataset that cannot be read (no class names, an unreadable split list or annotation file): exit 1 with
    the message, which names the file."""
    from engine.data.formats.yolo import DatasetError

    try:
        yield
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
