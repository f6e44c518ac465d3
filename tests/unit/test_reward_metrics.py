"""Held-out metrics are reproducible to the last digit (polars' group-by order is not)."""

from __future__ import annotations

import numpy as np
import polars as pl

from components.reward_model.metrics import slate_ndcg


def test_slate_ndcg_is_the_same_number_every_time():
    rng = np.random.default_rng(0)
    n = 50_000
    frame = pl.DataFrame({"session_id": np.repeat(np.arange(n // 10), 10)})
    gain, score = rng.random(n), rng.random(n)
    values = {slate_ndcg(frame, gain, score, 10) for _ in range(20)}
    assert len(values) == 1, values


def test_slate_ndcg_is_one_for_a_perfect_ranking_and_lower_for_a_reversed_one():
    frame = pl.DataFrame({"session_id": [0, 0, 0, 1, 1, 1]})
    gain = np.array([3.0, 2.0, 1.0, 1.0, 0.0, 2.0])
    assert slate_ndcg(frame, gain, gain, 3) == 1.0
    assert slate_ndcg(frame, gain, -gain, 3) < 1.0
