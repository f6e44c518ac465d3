"""CLI for the first DVC stage: ``python -m components.raw_logs --help``.

DVC has one stage slot for the raw logs; this picks ``simulate`` or ``ingest`` from
``source.kind`` so the rest of the DAG never needs to know where the logs came from.
"""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import params_option, user_errors

HELP = (
    "Produce the raw logs: run `simulate` when `source.kind` is 'world', or `ingest` the "
    "parquet files in `source.logs_dir` when it is 'logs'."
)
app = make_app(HELP)


@app.command(help=HELP)
def main(
    params: Path = params_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="where the raw-log tables go"),
    world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="where the truth (or a no-truth note) goes"),
    metrics_path: Path = typer.Option(Path("metrics/simulate.json"), "--metrics", help="JSON file for the stage's metrics"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Simulate or ingest, as params.yaml says."""
    with user_errors("raw_logs"):
        from components.params import load_params
        from components.stage import execute

        p = load_params(params)
        if p.source.kind == "world":
            from components.simulate.core import run as simulate

            execute("simulate", p, lambda q: simulate(q, raw_dir, world_dir, progress), metrics_path, seed_of=lambda q: q.simulate.seed)
        else:
            from components.ingest.core import run as ingest

            execute("ingest", p, lambda q: ingest(q, Path(q.source.logs_dir), raw_dir, world_dir, progress), metrics_path)


if __name__ == "__main__":
    app()
