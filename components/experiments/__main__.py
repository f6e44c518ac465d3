"""CLI: ``python -m components.experiments --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.experiments import SECTIONS

HELP = (
    "Build the experiment library the signal scorecard learns from: in simulation, the world's "
    "past A/B tests (plausible production policies as arms, forked from the same logged day, the "
    "same listeners in every arm); with real logs, the arms of the logs' experiments table. Writes "
    "the library in the raw-log contract and reports the spread of the arms' 28-day outcomes."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="the validated raw logs"),
    world_dir: Path = typer.Option(
        Path("data/world"), "--world-dir", help="the simulator's truth (simulation only)"
    ),
    out_dir: Path = typer.Option(Path("data/experiments"), "--out-dir", help="where the library goes"),
    metrics_path: Path = typer.Option(
        Path("metrics/experiments.json"), "--metrics", help="arms' outcomes, spread"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Build the experiment library (see HELP)."""
    with user_errors("experiments"):
        from components.experiments.core import run
        from components.stage import execute

        execute(
            "experiments",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, world_dir, out_dir, progress),
            metrics_path,
            seed_of=lambda p: p.experiments.seed,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
