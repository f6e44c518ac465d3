"""Reward-model throughput on this machine: training examples/s and scoring scores/s.

Builds the default-sized network (vocabulary and sequence layout from params.yaml) and times
the real training loop (``train_pointwise``, through Accelerate) and the real scoring path
(``RewardModel.logits``) on random token rows of that layout — speed depends on shapes,
not on values. Uses the GPU when there is one. Writes benchmarks/results/reward_model_throughput.json.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    train_examples: int = typer.Option(20_000, help="rows for the timed training epoch"),
    score_examples: int = typer.Option(100_000, help="rows for the timed scoring pass"),
    params: Path = typer.Option(
        Path("params.yaml"), help="params file (reward_model, features, catalogue sizes)"
    ),
    out: Path = typer.Option(Path("benchmarks/results/reward_model_throughput.json"), help="result file"),
) -> None:
    import torch

    from components.params import load_params
    from components.reward.examples import feature_lists, genre_mix_feature
    from components.reward.model import Head, RewardModel, build
    from components.reward.tokens import Encoder
    from components.reward_model.train import train_pointwise

    p = load_params(params)
    rp, cat = p.reward_model, p.simulate.catalogue
    user_f, cand_f = feature_lists(p.features)
    encoder = Encoder(
        user_features=user_f,
        candidate_features=cand_f,
        track_ids=list(range(cat.n_tracks)),
        artist_ids=list(range(cat.n_artists)),
        genre_ids=list(range(cat.n_genres)),
        history_length=rp.history_length,
        genre_mix=genre_mix_feature(p.features),
    )
    encoder.edges = {f: list(np.linspace(0, 1, rp.n_buckets - 1)) for f in encoder.bucketed}
    rng = np.random.default_rng(0)

    def tokens(n: int) -> np.ndarray:
        return rng.integers(0, encoder.vocab_size, size=(n, encoder.sequence_length), dtype=np.int64)

    network = build(encoder, rp.model, rp.seed)
    x, y = tokens(train_examples), rng.normal(size=train_examples)
    t = time.perf_counter()
    train_pointwise(network, x, y, x[:2000], y[:2000], "mse", rp.train, rp.seed)
    train_seconds = time.perf_counter() - t

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = RewardModel(encoder, network.to(device), Head("mse", "reward"))
    xs = tokens(score_examples)
    model.logits(xs[:8192])  # warm-up
    t = time.perf_counter()
    model.logits(xs)
    score_seconds = time.perf_counter() - t
    result = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "machine": platform.machine(),
        "parameters": sum(q.numel() for q in network.parameters()),
        "sequence_length": encoder.sequence_length,
        "vocab_size": encoder.vocab_size,
        "batch_size": rp.train.batch_size,
        "train_examples_per_second": train_examples / train_seconds,
        "scores_per_second": score_examples / score_seconds,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
