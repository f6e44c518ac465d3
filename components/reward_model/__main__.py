"""CLI: ``python -m components.reward_model --help`` (run it through ``accelerate launch``)."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.reward_model import SECTIONS

HELP = (
    "Train a reward model: a small transformer over the listener's recent tracks, their "
    "features and the candidate track, on the mid-term composite reward (--variant midterm) "
    "or on the click label for the ablation (--variant click). Held out: unseen listeners in a "
    "later period. Also fits the gradient-boosting baseline on the same features and reports "
    "both. Objective (pointwise / pairwise Bradley-Terry with TRL's RewardTrainer) and sizes: "
    "the `reward_model` section of params.yaml. Launch with `accelerate launch "
    "--config_file configs/accelerate/cpu.yaml -m components.reward_model ...` (gpu.yaml on GPUs)."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    variant: str = typer.Option(
        "midterm", "--variant", help="midterm (the composite reward) or click (streamed)"
    ),
    raw_dir: Path = typer.Option(
        Path("data/raw"), "--raw-dir", help="raw logs (the tracks table: catalogue ids)"
    ),
    features_dir: Path = typer.Option(
        Path("data/features"), "--features-dir", help="output of the features stage"
    ),
    labels_dir: Path = typer.Option(Path("data/labels"), "--labels-dir", help="output of the label stage"),
    signals_dir: Path = typer.Option(
        Path("data/signals"),
        "--signals-dir",
        help="the signals stage: the composite's weights, the library's labels",
    ),
    experiments_dir: Path = typer.Option(
        Path("data/experiments"), "--experiments-dir", help="the experiment library"
    ),
    out_dir: Path = typer.Option(
        Path("models/reward"), "--out-dir", help="where the model, encoder, tokenizer and curve go"
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/reward_model.json"), "--metrics", help="held-out metrics (model and baseline)"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train a reward model (see HELP)."""
    with user_errors("reward_model"):
        from components.errors import ParamsError

        if variant not in ("midterm", "click"):
            raise ParamsError(f"--variant must be 'midterm' or 'click', not '{variant}'")
        from components.reward_model.core import run
        from components.stage import execute

        def log_outputs(stage_run, p) -> None:
            import polars as pl

            from components.reward.model import EXAMPLE_FILE
            from components.reward.pyfunc import log_reward_model
            from components.reward_model.core import CURVE_CSV

            stage_run.log_curve(pl.read_csv(out_dir / CURVE_CSV).to_dicts(), f"curve_{variant}")
            stage_run.log_artifact(out_dir / "curve.png")
            log_reward_model(out_dir, pl.read_parquet(out_dir / EXAMPLE_FILE), name=f"reward_model_{variant}")

        execute(
            f"reward_model_{variant}" if variant == "click" else "reward_model",
            SECTIONS,
            params,
            lambda p: run(
                p,
                raw_dir,
                features_dir,
                labels_dir,
                out_dir,
                variant,
                progress,
                signals_dir=signals_dir,
                experiments_dir=experiments_dir,
            ),
            metrics_path,
            seed_of=lambda p: p.reward_model.seed,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
