"""CLI: ``python -m components.label --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.label import SECTIONS

HELP = (
    "Label every recommended impression with its immediate (streamed, skipped, saved) and "
    "mid-term reward signals (active_days_7d, artist_return_14d, retained_28d), fit the "
    "surrogate index (28-day outcome from 7-day signals, scored on a later cohort), share "
    "session-level outcomes by `label.attribution` and combine everything into `reward` with "
    "the `label.composite` weights. Censored labels are null, never guessed."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="the validated raw logs"),
    out_dir: Path = typer.Option(
        Path("data/labels"), "--out-dir", help="gets labels.parquet (one row per impression)"
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/label.json"), "--metrics", help="label rates, censored counts, surrogate accuracy"
    ),
) -> None:
    """Compute labels (see HELP)."""
    with user_errors("label"):
        from components.label.core import run
        from components.stage import execute

        execute(
            "label",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, out_dir),
            metrics_path,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
