"""CLI for the first stage: ``python -m components.raw_logs --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.raw_logs import SECTIONS

HELP = (
    "Produce the raw logs: run the listening world under the logging policy when `source.kind` "
    "is 'world' (writes the hidden truth to --world-dir), or lay out the contract tables in "
    "`source.logs_dir` when it is 'logs' (e.g. --set source.kind=logs --set source.logs_dir=/data/export; "
    "--world-dir then gets a note that no truth exists)."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(
        Path("data/raw"), "--raw-dir", help="where the raw-log tables and manifest.json go"
    ),
    world_dir: Path = typer.Option(
        Path("data/world"), "--world-dir", help="where the truth (or a no-truth note) goes"
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/simulate.json"), "--metrics", help="JSON file for the stage's metrics"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Simulate or ingest, as params.yaml says."""
    with user_errors("raw_logs"):
        from components.params import load_params
        from components.raw_logs.core import run, stage_name
        from components.stage import execute

        p = load_params(params, overrides(set_), only=SECTIONS)
        seed_of = (lambda q: q.simulate.seed) if p.source.kind == "world" else None
        execute(
            stage_name(p),
            SECTIONS,
            p,
            lambda q: run(q, raw_dir, world_dir, progress),
            metrics_path,
            seed_of=seed_of,
        )


if __name__ == "__main__":
    app()
