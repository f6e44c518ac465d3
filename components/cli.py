"""Shared CLI plumbing: user mistakes become one readable paragraph and exit code 2.

Bugs (anything that is not an :class:`~components.errors.EncoreError`) keep their full
traceback. Heavy imports stay inside each command so ``--help`` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from components.errors import EncoreError

PARAMS_HELP = "params.yaml to read (the single source of parameters)"


def app(help_text: str) -> typer.Typer:
    """A one-command Typer app with Encore's defaults."""
    return typer.Typer(add_completion=False, help=help_text, no_args_is_help=False, pretty_exceptions_enable=False)


def params_option() -> Path:
    return typer.Option(Path("params.yaml"), "--params", "-p", help=PARAMS_HELP, dir_okay=False)


@contextmanager
def user_errors(stage: str) -> Iterator[None]:
    """Turn an EncoreError into ``error [stage]: ...`` on stderr and exit code 2."""
    try:
        yield
    except EncoreError as exc:
        print(f"error [{stage}]: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
