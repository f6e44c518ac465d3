"""CLI: ``python -m components.validate --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.validate import SECTIONS

HELP = (
    "Check the raw logs with Great Expectations; refuse them (exit 2) if any expectation fails.\n\n"
    "Reads impressions, plays, users, tracks and manifest.json from --raw-dir and checks dtypes, "
    "UTC times, nulls, value ranges, id ranges, timestamps inside the log window and after signup, "
    "unique keys and duplicate plays, referential integrity (artist per track included), "
    "consistent outcome flags, country codes, daily impression volume and listening time per "
    "listener-day (bounds: the `validate` section of params.yaml). A folder without manifest.json "
    "(e.g. your own export) is accepted: the window is then inferred from the bulk of the events, "
    "as ingest infers it.\n\n"
    "Success writes --report and --metrics. A breach removes both, writes <report>.failed.html "
    "and lists each failure: table, expectation, column(s), failing rows of total."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(
        Path("data/raw"),
        "--raw-dir",
        help="folder with the four raw-log tables and, if simulate/ingest wrote it, manifest.json",
    ),
    report_path: Path = typer.Option(
        Path("reports/validation.html"),
        "--report",
        dir_okay=False,
        help="HTML report of every expectation; a failing run removes it and writes "
        "<stem>.failed.html beside it instead",
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/validate.json"),
        "--metrics",
        dir_okay=False,
        help="JSON file for the run's counts (expectations, failures, rows per table); removed on failure",
    ),
) -> None:
    """Validate the raw logs (see HELP)."""
    with user_errors("validate"):
        from components.stage import execute
        from components.validate.core import run

        execute(
            "validate",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, report_path, metrics_path),
            metrics_path,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
