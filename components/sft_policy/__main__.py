"""CLI: ``python -m components.sft_policy --help`` (run it through ``accelerate launch``)."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli import app as make_app
from components.cli import overrides, params_epilog, params_option, set_option, user_errors
from components.sft_policy import SECTIONS

HELP = (
    "Train the generative recommender by imitation: a causal LM whose vocabulary holds one "
    "token per track reads a prompt (bucketed listener features + recent plays) and learns to "
    "write the next k new tracks the listener played. A small GPT-2 from config by default, or "
    "a local Hugging Face checkpoint (`sft_policy.base_model`) extended with the item tokens. "
    "Reports Recall@k / NDCG@k on held-out listeners' next plays against a popularity baseline."
)
app = make_app(HELP)


@app.command(help=HELP, epilog=params_epilog(SECTIONS))
def main(
    params: Path = params_option(),
    set_: list[str] = set_option(),
    raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="raw logs (plays, tracks)"),
    features_dir: Path = typer.Option(
        Path("data/features"), "--features-dir", help="output of the features stage"
    ),
    out_dir: Path = typer.Option(
        Path("models/sft"), "--out-dir", help="where the policy, tokenizer and vocabulary go"
    ),
    metrics_path: Path = typer.Option(
        Path("metrics/sft_policy.json"), "--metrics", help="held-out ranking metrics"
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train the SFT policy (see HELP)."""
    with user_errors("sft_policy"):
        from components.policy.model import CURVE_CSV
        from components.sft_policy.core import run
        from components.stage import execute

        def log_outputs(stage_run, p) -> None:
            import polars as pl

            stage_run.log_curve(pl.read_csv(out_dir / CURVE_CSV).to_dicts(), "curve_sft")
            stage_run.log_artifact(out_dir / "curve.png")

        execute(
            "sft_policy",
            SECTIONS,
            params,
            lambda p: run(p, raw_dir, features_dir, out_dir, progress),
            metrics_path,
            seed_of=lambda p: p.sft_policy.seed,
            log_outputs=log_outputs,
            overrides=overrides(set_),
        )


if __name__ == "__main__":
    app()
