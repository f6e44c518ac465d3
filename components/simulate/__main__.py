"""CLI: ``python -m components.simulate --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import params_option, user_errors

HELP = (
    "Simulate the listening world under the logging policy for `simulate.days` days "
    "(after `simulate.warmup_days` unlogged days) and write the raw logs "
    "(impressions, plays, users, tracks as parquet, plus manifest.json) and, apart, the "
    "hidden truth. Every parameter comes from the `simulate` section of params.yaml."
)
app = make_app(HELP)


@app.command(help=HELP)
def main(
    params: Path = params_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="where the four raw-log tables and manifest.json go"),
    world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="where the hidden truth goes (read only by evaluation)"),
    metrics_path: Path = typer.Option(Path("metrics/simulate.json"), "--metrics", help="JSON file for the run's summary metrics"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Run the world and write raw logs + truth."""
    with user_errors("simulate"):
        from components.stage import execute
        from components.simulate.core import run

        execute("simulate", params, lambda p: run(p, raw_dir, world_dir, progress), metrics_path, seed_of=lambda p: p.simulate.seed)


if __name__ == "__main__":
    app()
