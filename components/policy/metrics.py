"""Ranking metrics of generated slates against what the listener actually played next."""

from __future__ import annotations

import numpy as np


def recall_ndcg(slates: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Mean Recall@k and NDCG@k (binary relevance: the track was among the next k new plays)."""
    k = slates.shape[1]
    hit = (slates[:, :, None] == actual[:, None, :]).any(axis=2)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = discount[: actual.shape[1]].sum()
    return float(hit.mean(axis=1).mean()), float(((hit * discount).sum(axis=1) / ideal).mean())


def popularity_slates(train_tracks: np.ndarray, histories: np.ndarray, k: int) -> np.ndarray:
    """The k most played tracks of the training period, skipping each listener's history."""
    ids, counts = np.unique(train_tracks, return_counts=True)
    ranked = ids[np.argsort(-counts, kind="stable")][: k + histories.shape[1]]
    blocked = (ranked[None, :, None] == histories[:, None, :]).any(axis=2)
    order = np.argsort(blocked, axis=1, kind="stable")[:, :k]  # unblocked first, in popularity order
    return ranked[order]


def valid_slate_rate(slates: np.ndarray, histories: np.ndarray, catalogue: np.ndarray) -> float:
    """Share of slates with k distinct catalogue tracks, none from the prompt history."""
    srt = np.sort(slates, axis=1)
    distinct = (srt[:, 1:] != srt[:, :-1]).all(axis=1)
    known = np.isin(slates, catalogue).all(axis=1)
    fresh = ~(slates[:, :, None] == histories[:, None, :]).any(axis=(1, 2))
    return float((distinct & known & fresh).mean())
