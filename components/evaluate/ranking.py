"""Ranking metrics of each policy on held-out listeners' next plays, plus catalogue-level
properties of what it recommends: coverage, intra-slate diversity and novelty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from components.policy.decoding import generate_slates
from components.policy.metrics import popularity_slates, recall_ndcg
from components.policy.model import load as load_policy
from components.policy.sequences import Sequences


def slate_properties(
    slates: np.ndarray,
    genre_of: dict[int, int],
    artist_of: dict[int, int],
    popularity: dict[int, float],
    catalogue_size: int,
) -> dict[str, float]:
    """coverage: share of the catalogue recommended at least once; diversity: distinct genres
    (and artists) per slate / k; novelty: mean self-information -log2 p(track) of the
    recommended tracks, p = share of training plays (unplayed tracks get the smallest p)."""
    k = slates.shape[1]
    floor = min(popularity.values()) / 2 if popularity else 1e-9
    genres = np.vectorize(lambda t: genre_of.get(int(t), -1), otypes=[np.int64])(slates)
    artists = np.vectorize(lambda t: artist_of.get(int(t), -1), otypes=[np.int64])(slates)
    p = np.vectorize(lambda t: popularity.get(int(t), floor), otypes=[np.float64])(slates)
    return {
        "coverage": float(len(np.unique(slates)) / catalogue_size),
        "genre_diversity": float(np.mean([len(set(g)) / k for g in genres])),
        "artist_diversity": float(np.mean([len(set(a)) / k for a in artists])),
        "novelty": float(np.mean(-np.log2(p))),
    }


def ranking_metrics(
    policies: dict[str, Path],
    held_out: Sequences,
    train_plays: np.ndarray,
    tracks: pl.DataFrame,
    sample: bool,
    temperature: float,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Per policy (and a popularity baseline): Recall@k, NDCG@k and the slate properties."""
    genre_of = dict(zip(tracks["track_id"].to_list(), tracks["genre_id"].to_list()))
    artist_of = dict(zip(tracks["track_id"].to_list(), tracks["artist_id"].to_list()))
    ids, counts = np.unique(train_plays, return_counts=True)
    popularity = dict(zip(ids.tolist(), (counts / counts.sum()).tolist()))
    out: dict[str, dict[str, float]] = {}
    k = held_out.completion.shape[1]
    candidates: dict[str, np.ndarray] = {"popularity": popularity_slates(train_plays, held_out.history, k)}
    for name, path in policies.items():
        model, _, vocab = load_policy(path)
        prompts = vocab.prompts(held_out.features.select(vocab.features), held_out.history)
        candidates[name] = generate_slates(
            model, vocab, prompts, sample=sample, seed=seed, temperature=temperature
        )
    for name, slates in candidates.items():
        recall, ndcg = recall_ndcg(slates, held_out.completion)
        out[name] = {
            f"recall_at_{k}": recall,
            f"ndcg_at_{k}": ndcg,
            **slate_properties(slates, genre_of, artist_of, popularity, tracks.height),
        }
    return out
