"""CLI: ``python -m pipelines.loop --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from pipelines.loop import SECTIONS

HELP = (
    "The closed loop, `loop.rounds` rounds after the RL policy: each round serves the current policy "
    "through the service's sampler to `loop.treatment_share` of the listeners for "
    "`loop.days_per_round` days (the rest get the logging policy), appends the days to the logs "
    "with their propensities, rebuilds features and labels, retrains the reward model on all logs "
    "(plus `loop.served_examples` of the served slates) and runs RL again from the SFT policy. "
    "Each round's policy is measured against the world's truth: off-policy estimates from the "
    "round's served logs vs its on-policy value, the reward model's Spearman with the truth. "
    "A killed run resumes at the first unfinished step. Writes the final policy and reward model "
    "(the gate's challenger), every earlier round's policy (the A/B arms) and rounds.json."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="raw logs (round 0's)"),
    world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="the world at the end of the log"),
    features_dir: Path = typer.Option(Path("data/features"), "--features-dir", help="features stage output"),
    labels_dir: Path = typer.Option(Path("data/labels"), "--labels-dir", help="label stage output"),
    signals_dir: Path = typer.Option(Path("data/signals"), "--signals-dir", help="composite weights"),
    experiments_dir: Path = typer.Option(
        Path("data/experiments"), "--experiments-dir", help="the experiment library (reward-model examples)"
    ),
    sft_dir: Path = typer.Option(Path("models/sft"), "--sft-dir", help="SFT policy (RL's start and anchor)"),
    reward_dir: Path = typer.Option(Path("models/reward"), "--reward-dir", help="round 0's reward model"),
    policy_dir: Path = typer.Option(Path("models/policy"), "--policy-dir", help="round 0's policy"),
    work_dir: Path = typer.Option(
        Path("data/loop"),
        "--work-dir",
        help="each round's logs, world, features, labels, models (kept to resume)",
    ),
    out_dir: Path = typer.Option(
        Path("models/loop"),
        "--out-dir",
        help="final policy + reward model, earlier rounds' policies, rounds.json",
    ),
    metrics_path: Path = typer.Option(Path("metrics/loop.json"), "--metrics", help="flat metrics per round"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Run (or resume) the closed loop (see HELP)."""
    with user_errors("loop"):
        import json

        from components.stage import execute
        from pipelines.loop.core import ROUNDS_JSON, RoundDirs, run

        start = RoundDirs(raw_dir, world_dir, features_dir, labels_dir, reward_dir, policy_dir)

        def log_outputs(stage_run, p) -> None:
            for row in json.loads((out_dir / ROUNDS_JSON).read_text())["rounds"]:
                numbers = {k: v for k, v in row.items() if k != "round" and isinstance(v, (int, float))}
                stage_run.log_metrics({f"round/{k}": v for k, v in numbers.items()}, step=row["round"])
            for name in (ROUNDS_JSON, "loop.png"):
                if (out_dir / name).exists():
                    stage_run.log_artifact(out_dir / name)

        execute(
            "loop",
            SECTIONS,
            params,
            lambda p: run(p, start, signals_dir, experiments_dir, sft_dir, work_dir, out_dir, progress),
            metrics_path,
            seed_of=lambda p: p.loop.seed,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )
        print(f"loop: {out_dir / ROUNDS_JSON} (chart: {out_dir / 'loop.png'})")


if __name__ == "__main__":
    app()
