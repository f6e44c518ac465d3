"""CLI: ``python -m components.signals --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.signals import SECTIONS

HELP = (
    "Validate every candidate short-term signal against the experiment library: does an arm's "
    "effect on it in the first week predict the arm's effect on 28-day active days and retention? "
    "Reports validity, sensitivity, lag and coverage per signal, validates the guardrails the same "
    "way, and learns the composite reward (non-negative weights, leave-one-out checked) that the "
    "reward model, RL and the gate use from here on (label.composite.mode)."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(
        Path("data/raw"), "--raw-dir", help="raw logs (history before each experiment)"
    ),
    labels_dir: Path = typer.Option(
        Path("data/labels"), "--labels-dir", help="label stage output (surrogate)"
    ),
    experiments_dir: Path = typer.Option(Path("data/experiments"), "--experiments-dir", help="the library"),
    out_dir: Path = typer.Option(
        Path("data/signals"), "--out-dir", help="weights.json, scorecard, arms, labels"
    ),
    report_path: Path = typer.Option(
        Path("reports/signals.html"), "--report", help="the scorecard page (+ .md)"
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/signals.json"), "--metrics", help="flat scorecard metrics"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Score the signals and learn the composite (see HELP)."""
    with user_errors("signals"):
        from components.signals.core import run
        from components.stage import execute

        def log_outputs(stage_run, p) -> None:
            stage_run.log_artifact(report_path)
            stage_run.log_artifact(out_dir / "weights.json")

        execute(
            "signals",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, labels_dir, experiments_dir, out_dir, report_path, progress),
            metrics_path,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )
        print(f"scorecard: {report_path}")


if __name__ == "__main__":
    app()
