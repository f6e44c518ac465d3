"""Ranking metrics of generated slates against what the listener actually played next."""

from __future__ import annotations

import numpy as np
import polars as pl


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


COVERAGE_SLATES = 2000  # catalogue coverage is counted over this many slates, so policies and arms compare


def slate_shape(slates: np.ndarray, tracks: pl.DataFrame) -> dict[str, float]:
    """What a set of slates looks like, whoever served them (a library arm, a challenger, an oracle).

    ``tracks``: the catalogue (``track_id``, ``artist_id``, ``genre_id``); a track id not in it
    counts as its own artist and genre. Tracks are found by search in the sorted ids, not by an
    array indexed by id, so sparse ids (a warehouse's keys) cost nothing extra.
    - ``genre_diversity`` / ``artist_diversity``: distinct genres / artists per slate / k;
    - ``artist_concentration``: the share of a slate taken by its most frequent artist;
    - ``coverage``: share of the catalogue in the first ``COVERAGE_SLATES`` slates.
    """
    n, k = slates.shape
    if n == 0 or tracks.height == 0:
        return {
            m: float("nan")
            for m in ("genre_diversity", "artist_diversity", "artist_concentration", "coverage")
        }
    catalogue = tracks.select("track_id", "artist_id", "genre_id").sort("track_id")
    ids = catalogue["track_id"].to_numpy()
    at = np.minimum(np.searchsorted(ids, slates), len(ids) - 1)
    valid = ids[at] == slates
    unknown = -1 - np.arange(k)[None, :]  # distinct per slot
    artists = np.where(valid, catalogue["artist_id"].to_numpy()[at], unknown)
    genres = np.where(valid, catalogue["genre_id"].to_numpy()[at], unknown)

    def distinct(x: np.ndarray) -> np.ndarray:
        s = np.sort(x, axis=1)
        return 1 + (s[:, 1:] != s[:, :-1]).sum(axis=1)

    same = (artists[:, :, None] == artists[:, None, :]).sum(axis=2)  # (n, k) count of each slot's artist
    return {
        "genre_diversity": float(np.mean(distinct(genres) / k)),
        "artist_diversity": float(np.mean(distinct(artists) / k)),
        "artist_concentration": float(np.mean(same.max(axis=1) / k)),
        "coverage": float(len(np.unique(slates[:COVERAGE_SLATES])) / tracks.height),
    }
