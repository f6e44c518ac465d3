"""CLI: ``python -m components.ingest --help``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from components.cli import app as make_app
from components.cli import params_option, user_errors

HELP = (
    "Ingest real logs instead of simulating: read the contract tables (impressions, plays, "
    "users, tracks) from a folder of parquet files and lay them out exactly as `simulate` "
    "does, so every later stage runs unchanged. No ground truth exists for real logs."
)
app = make_app(HELP)


@app.command(help=HELP)
def main(
    params: Path = params_option(),
    logs_dir: Optional[Path] = typer.Option(None, "--logs-dir", help="folder with the contract tables (default: source.logs_dir)"),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="where the laid-out tables and manifest.json go"),
    world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="gets a note that no ground truth exists"),
    metrics_path: Path = typer.Option(Path("metrics/simulate.json"), "--metrics", help="JSON file for row counts"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Lay out real logs as the raw-log contract."""
    with user_errors("ingest"):
        from components.ingest.core import run
        from components.stage import execute

        execute(
            "ingest",
            params,
            lambda p: run(p, logs_dir or Path(p.source.logs_dir), raw_dir, world_dir, progress),
            metrics_path,
        )


if __name__ == "__main__":
    app()
