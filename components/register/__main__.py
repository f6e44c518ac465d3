"""CLI: ``python -m components.register --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.register import SECTIONS

HELP = (
    "Register the policy and its reward model in MLflow (signatures, lineage tags), point the "
    "`challenger` alias at them, and move `champion` only if the evaluation's gate said "
    "'promote'. The same models again register nothing new. The decision and its reasons go "
    "to --metrics and to the MLflow run."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    policy_dir: Path = typer.Option(Path("models/policy"), "--policy-dir", help="the challenger policy"),
    reward_dir: Path = typer.Option(Path("models/reward"), "--reward-dir", help="its reward model"),
    evaluation_dir: Path = typer.Option(
        Path("reports/evaluation"), "--evaluation-dir", help="evaluate output (gate.json)"
    ),
    metrics_path: Path = typer.Option(Path("metrics/register.json"), "--metrics", help="the decision record"),
) -> None:
    """Register and gate (see HELP)."""
    with user_errors("register"):
        from components.paths import project_root
        from components.register.core import run
        from components.stage import execute

        record = execute(
            "register",
            SECTIONS,
            params,
            lambda p: run(p, policy_dir, reward_dir, evaluation_dir, project_root()),
            metrics_path,
            overrides=overrides(set_),
            run_open_during_stage=True,  # register logs its models and gate.json to the stage's run
        )
        print(
            f"gate: {record['gate']}; registered: {record['registered']}; champion moved: "
            f"{record['promoted']}"
        )
        for reason in record["reasons"]:
            print(f"  {reason}")


if __name__ == "__main__":
    app()
