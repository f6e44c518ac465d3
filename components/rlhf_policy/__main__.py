"""CLI: ``python -m components.rlhf_policy --help`` (run it through ``accelerate launch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.rlhf_policy import SECTIONS

HELP = (
    "RL fine-tuning of the SFT policy with TRL's GRPO: sample several constrained slates per "
    "listener context, reward each with the reward model's mean score of its tracks, and move "
    "the policy towards the better ones while a KL penalty (`rlhf_policy.beta`) holds it near "
    "the SFT reference. --variant midterm uses the mid-term reward model, --variant click the "
    "click ablation's. Checkpoints every `rlhf_policy.checkpoint_every` steps into "
    "--checkpoint-dir; a rerun resumes from the last one. In simulation (--world-dir with a "
    "truth) the evaluation code's watch logs the true long-term value of the slates beside "
    "the proxy reward."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    variant: str = typer.Option("midterm", "--variant", help="midterm or click: which reward model"),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="raw logs (tracks)"),
    features_dir: Path = typer.Option(
        Path("data/features"), "--features-dir", help="output of the features stage"
    ),
    sft_dir: Path = typer.Option(
        Path("models/sft"), "--sft-dir", help="the SFT policy (start and KL reference)"
    ),
    reward_dir: Optional[Path] = typer.Option(
        None,
        "--reward-dir",
        help="reward model to optimise (default: models/reward; models/reward_click with --variant click)",
    ),
    out_dir: Optional[Path] = typer.Option(
        None,
        "--out-dir",
        help="where the fine-tuned policy goes (default: models/policy or models/policy_click)",
    ),
    checkpoint_dir: Optional[Path] = typer.Option(
        None,
        "--checkpoint-dir",
        help="checkpoints, kept for resuming (default: models/checkpoints/policy or .../policy_click)",
    ),
    world_dir: Optional[Path] = typer.Option(
        Path("data/world"), "--world-dir", help="the simulator's truth (for the watch); absent = none"
    ),
    metrics_path: Optional[Path] = typer.Option(
        None,
        "--metrics",
        help="final reward, KL, entropy, diversity, speed "
        "(default: metrics/rlhf_policy.json or metrics/rlhf_policy_click.json)",
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fine-tune the policy with GRPO (see HELP)."""
    with user_errors("rlhf_policy"):
        from components.errors import ParamsError

        if variant not in ("midterm", "click"):
            raise ParamsError(f"--variant must be 'midterm' or 'click', not '{variant}'")
        suffix = (
            "" if variant == "midterm" else "_click"
        )  # the variant picks the defaults; explicit paths win
        reward_dir = reward_dir or Path(f"models/reward{suffix}")
        out_dir = out_dir or Path(f"models/policy{suffix}")
        checkpoint_dir = checkpoint_dir or Path(f"models/checkpoints/policy{suffix}")
        metrics_path = metrics_path or Path(f"metrics/rlhf_policy{suffix}.json")
        from components.policy.model import CURVE_CSV
        from components.rlhf_policy.core import run
        from components.stage import execute

        def log_outputs(stage_run, p) -> None:
            import polars as pl

            stage_run.log_curve(pl.read_csv(out_dir / CURVE_CSV).to_dicts(), f"rl_{variant}")
            stage_run.log_artifact(out_dir / "curve.png")

        execute(
            "rlhf_policy" if variant == "midterm" else "rlhf_policy_click",
            SECTIONS,
            params,
            lambda p: run(
                p, raw_dir, features_dir, sft_dir, reward_dir, out_dir, checkpoint_dir, world_dir, progress
            ),
            metrics_path,
            seed_of=lambda p: p.rlhf_policy.seed,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
