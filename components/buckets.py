"""Quantile buckets: how the reward model's and the policy's tokenizers turn numbers into tokens."""

from __future__ import annotations

import numpy as np


def quantile_edges(values: np.ndarray, n_buckets: int) -> list[float]:
    """Inner edges of ``n_buckets`` equal-mass buckets of ``values`` (NaNs dropped by the caller);
    repeated quantiles collapse, so a feature with few distinct values gets fewer buckets."""
    if not len(values):
        return []
    qs = np.linspace(0, 1, n_buckets + 1)[1:-1]
    return np.unique(np.quantile(values, qs)).tolist()


def bucket_of(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bucket index 0..len(edges) of each value (NaN lands in the last bucket: mask it first)."""
    return np.searchsorted(np.asarray(edges), values, side="right")
