"""CLI: ``python -m components.features --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.features import SECTIONS

HELP = (
    "Compute Encore's batch feature sources from the raw logs (daily snapshots stamped with "
    "the time they became known), `feast apply` the repository in feature_repo/, materialise "
    "the latest values into the online store (SQLite, Redis or the cluster's: `features.store`), and "
    "build the point-in-time-correct training frame of every recommended impression with "
    "`get_historical_features`."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="the validated raw logs"),
    out_dir: Path = typer.Option(
        Path("data/features"),
        "--out-dir",
        help="gets sources/*.parquet, feast/ (registry, SQLite online store) and train_frame.parquet",
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/features.json"), "--metrics", help="row counts, null rates, timings"
    ),
) -> None:
    """Build features (see HELP)."""
    with user_errors("features"):
        from components.features.core import run
        from components.stage import execute

        execute(
            "features",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, out_dir),
            metrics_path,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
