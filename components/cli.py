"""Shared CLI plumbing: ``--params``/``--set``, the parameter help, and readable user errors.

User mistakes (an :class:`~components.errors.EncoreError`) become one paragraph on stderr
and exit code 2; bugs keep their full traceback. Heavy imports stay inside each command so
``--help`` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from components.errors import EncoreError, ParamsError

PARAMS_HELP = "params.yaml to read (the single source of parameters)"
SET_HELP = (
    "override one parameter for this run, e.g. --set rlhf_policy.max_steps=50 (repeatable; YAML values)"
)


def app(help_text: str) -> typer.Typer:
    """A one-command Typer app with Encore's defaults."""
    return typer.Typer(
        add_completion=False,
        help=help_text,
        no_args_is_help=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


def params_option() -> Path:
    return typer.Option(Path("params.yaml"), "--params", "-p", help=PARAMS_HELP, dir_okay=False)


def set_option() -> list[str]:
    return typer.Option([], "--set", "-s", help=SET_HELP, metavar="SECTION.KEY=VALUE")


def overrides(assignments: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c.d=x"]`` -> ``{"a.b": 1, "c.d": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ParamsError(
                f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set rlhf_policy.max_steps=50"
            )
        out[key.strip()] = yaml.safe_load(value)
    return out


def params_epilog(sections: Sequence[str]) -> str:
    """The parameters a stage reads, with their descriptions (the end of its ``--help``)."""
    from components.params import describe

    # "\b" keeps click from re-wrapping a block: one parameter per line
    blocks = ["\b\n" + describe([s]) for s in sections]
    return "\n\n".join(["Parameters it reads (params.yaml; override with --set SECTION.KEY=VALUE):", *blocks])


@contextmanager
def user_errors(stage: str) -> Iterator[None]:
    """Turn an EncoreError into ``error [stage]: ...`` on stderr and exit code 2."""
    try:
        yield
    except EncoreError as exc:
        print(f"error [{stage}]: {exc}", file=sys.stderr)
        raise typer.Exit(code=2) from None
