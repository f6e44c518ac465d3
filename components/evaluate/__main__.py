"""CLI: ``python -m components.evaluate --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.evaluate import SECTIONS

HELP = (
    "Evaluate every candidate policy: off-policy estimates (IIPS, RIPS, self-normalised, "
    "doubly robust) on held-out logged slates with bootstrap CIs, ESS and clipping; ranking "
    "metrics on held-out listeners' next plays; with the simulator's truth, the simulated A/B "
    "test of logging, SFT, click-RL, mid-term-RL and both oracles and each estimator's error "
    "against the truth; A/B planning; the promotion gate against the registry's champion. "
    "Writes an HTML report with plots, a Markdown summary and gate.json."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="raw logs"),
    features_dir: Path = typer.Option(Path("data/features"), "--features-dir", help="features stage output"),
    labels_dir: Path = typer.Option(Path("data/labels"), "--labels-dir", help="label stage output"),
    signals_dir: Path = typer.Option(
        Path("data/signals"),
        "--signals-dir",
        help="the signals stage: composite weights, scorecard (guardrails)",
    ),
    experiments_dir: Path = typer.Option(
        Path("data/experiments"),
        "--experiments-dir",
        help="the experiment library (the reward model's validity)",
    ),
    world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="the truth (or a no-truth note)"),
    reward_dir: Path = typer.Option(
        Path("models/reward"), "--reward-dir", help="mid-term reward model (direct method)"
    ),
    sft_dir: Path = typer.Option(Path("models/sft"), "--sft-dir", help="SFT policy"),
    policy_dir: Path = typer.Option(
        Path("models/policy"), "--policy-dir", help="mid-term RL policy (the challenger)"
    ),
    click_policy_dir: Path = typer.Option(
        Path("models/policy_click"), "--click-policy-dir", help="click-RL policy"
    ),
    loop_dir: Path = typer.Option(
        Path("models/loop"),
        "--loop-dir",
        help="the closed loop's output: each earlier round's policy is an A/B arm "
        "(rlhf_midterm_round_<r>), its rounds.json a chart; absent = no loop",
    ),
    report_dir: Path = typer.Option(
        Path("reports/evaluation"),
        "--report-dir",
        help="evaluation.html, summary.md, evaluation.json, gate.json",
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/evaluate.json"), "--metrics", help="flat metrics for DVC/MLflow"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Evaluate the candidates (see HELP)."""
    with user_errors("evaluate"):
        from components.evaluate.core import run
        from components.evaluate.rounds import round_policies
        from components.stage import execute

        # the challenger last: rlhf_midterm is the loop's final round (or the RL stage's policy)
        policies = {
            "sft": sft_dir,
            "rlhf_click": click_policy_dir,
            **round_policies(loop_dir),
            "rlhf_midterm": policy_dir,
        }

        def log_outputs(stage_run, p) -> None:
            for name in ("evaluation.html", "summary.md", "gate.json"):
                stage_run.log_artifact(report_dir / name)

        execute(
            "evaluate",
            SECTIONS,
            params,
            lambda p: run(
                p,
                raw_dir,
                features_dir,
                labels_dir,
                world_dir,
                reward_dir,
                policies,
                report_dir,
                progress,
                signals_dir,
                experiments_dir,
                loop_dir,
            ),
            metrics_path,
            seed_of=lambda p: p.evaluate.seed,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )
        print(f"report: {report_dir / 'evaluation.html'} (summary: {report_dir / 'summary.md'})")


if __name__ == "__main__":
    app()
