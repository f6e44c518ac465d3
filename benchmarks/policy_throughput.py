"""Generative-policy throughput on this machine: RL steps/s and generated tokens/s.

Times the real code paths on the outputs of ``dvc repro`` (``models/sft``, ``models/reward``,
``data/raw``, ``data/features``), so the figures are for the default model size:

- **RL**: the ``rlhf_policy`` stage itself (TRL GRPO, constrained sampling, reward-model
  scoring, KL to the reference) for ``--rl-steps`` steps into a scratch folder, without the
  truth watch (the watch is evaluation, not training). Reports steps/s and generated slate
  tokens/s (steps x prompts x generations x k / seconds).
- **Serving**: greedy constrained decoding (``generate_slates``) of ``--serve-prompts``
  slates at serving batch size — the path the simulated A/B test and a batch scorer use.
- **Ranked serving** (``ab.lm_decoding: rank``): generate-then-rank of ``--rank-prompts``
  requests in batches of 64 (``ab.rank_draws`` sampled slates each, ranked by the reward model
  with the listener's recent plays), on the CPU as the service runs; and the same with the
  Monte-Carlo propensities (``ab.rank_propensity_draws`` more candidate sets per request) — what
  logging a ranked slate, or scoring one in the off-policy estimates, costs.

Uses the GPU when there is one. Writes benchmarks/results/policy_throughput.json.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def _require(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise typer.BadParameter(
            f"missing {', '.join(missing)}: run `make repro` (or `dvc repro rlhf_policy`) first"
        )


@app.command()
def main(
    rl_steps: int = typer.Option(40, help="GRPO steps to time"),
    serve_prompts: int = typer.Option(8192, help="prompts for the timed serving pass"),
    rank_prompts: int = typer.Option(1024, help="requests for the timed generate-then-rank pass"),
    params: Path = typer.Option(Path("params.yaml"), help="params file (rlhf_policy, sft_policy)"),
    raw_dir: Path = typer.Option(Path("data/raw")),
    features_dir: Path = typer.Option(Path("data/features")),
    sft_dir: Path = typer.Option(Path("models/sft")),
    reward_dir: Path = typer.Option(Path("models/reward")),
    out: Path = typer.Option(Path("benchmarks/results/policy_throughput.json"), help="result file"),
) -> None:
    import numpy as np
    import polars as pl
    import torch

    from components import contract
    from components.featurestore.lookup import FeatureLookup
    from components.params import load_params
    from components.policy.decoding import generate_slates
    from components.policy.model import load as load_policy
    from components.rlhf_policy.core import run as run_rl
    from components.sequences import right_aligned

    _require([raw_dir, features_dir, sft_dir, reward_dir])
    p = load_params(params)
    rp = p.rlhf_policy.model_copy(update={"max_steps": rl_steps, "checkpoint_every": rl_steps})
    p = p.model_copy(update={"rlhf_policy": rp})

    with tempfile.TemporaryDirectory() as scratch:
        s = Path(scratch)
        rl = run_rl(
            p,
            raw_dir,
            features_dir,
            sft_dir,
            reward_dir,
            s / "policy",
            s / "checkpoints",
            world_dir=None,
            progress=True,
        )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, _, vocab = load_policy(sft_dir)
    model.to(device)
    tracks = pl.from_arrow(
        contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id", "duration_ms"])
    )
    lookup = FeatureLookup.from_sources(features_dir, p.features, tracks)
    users = lookup.users()
    prompts = vocab.prompts(
        users.select(vocab.features), right_aligned(users["recent_tracks"], vocab.history_length)
    )
    prompts = prompts[np.arange(serve_prompts) % len(prompts)]
    generate_slates(model, vocab, prompts[:512], sample=False)  # warm-up
    t = time.perf_counter()
    generate_slates(model, vocab, prompts, sample=False)
    serve_seconds = time.perf_counter() - t

    ranked = _ranked_serving(p, lookup, reward_dir, model.to("cpu"), vocab, users, prompts[:rank_prompts])

    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "machine": platform.machine(),
        "policy_parameters": sum(q.numel() for q in model.parameters()),
        "vocab_size": model.get_output_embeddings().weight.shape[0],
        "prompt_length": int(prompts.shape[1]),
        "slate_size": vocab.slate_size,
        "rl": {
            "steps": rl_steps,
            "slates_per_step": rp.prompts_per_step * rp.num_generations,
            "steps_per_second": rl["rl/steps_per_second"],
            "generated_tokens_per_second": rl["rl/generated_tokens_per_second"],
        },
        "serving_greedy": {
            "slates": serve_prompts,
            "slates_per_second": serve_prompts / serve_seconds,
            "generated_tokens_per_second": serve_prompts * vocab.slate_size / serve_seconds,
        },
        "serving_ranked": ranked,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _ranked_serving(p, lookup, reward_dir: Path, model, vocab, users, prompts, batch: int = 64) -> dict:
    """Requests/s of generate-then-rank, without and with the Monte-Carlo propensities."""
    import numpy as np
    import torch

    from components.reward.model import RewardModel
    from components.sampler.ranked import rank_slates
    from components.sampler.sampling import Sampler
    from components.sampler.served import history_scorer
    from components.sequences import right_aligned

    ab = p.ab
    reward = RewardModel.load(reward_dir, device="cpu").with_lookup(lookup)
    sampler = Sampler.of(model, vocab)
    rows = np.arange(len(prompts)) % users.height
    ids = users["user_id"].to_numpy()[rows]
    histories = right_aligned(users["recent_tracks"], vocab.history_length)[rows]

    def serve(n: int, propensity_draws: int) -> float:
        generator = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        for lo in range(0, n, batch):
            score = history_scorer(reward, ids[lo : lo + batch], histories[lo : lo + batch])
            rank_slates(
                sampler,
                prompts[lo : lo + batch],
                score,
                ab.rank_draws,
                ab.lm_temperature,
                ab.lm_epsilon,
                generator,
                propensity_draws,
            )
        return n / (time.perf_counter() - t)

    with_propensities = max(batch, len(prompts) // 4)
    return {
        "draws": ab.rank_draws,
        "batch": batch,
        "requests_per_second": serve(len(prompts), 0),
        "propensity_draws": ab.rank_propensity_draws,
        "requests_per_second_with_propensities": serve(with_propensities, ab.rank_propensity_draws),
    }


if __name__ == "__main__":
    app()
