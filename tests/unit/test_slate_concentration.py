"""The RL stage's concentration metrics: a collapsed batch of slates reads as collapsed."""

from __future__ import annotations

import math

import numpy as np

from components.rlhf_policy.rewards import SlateReward

ARTIST_OF = {t: t // 10 for t in range(100)}  # ten tracks per artist
GENRE_OF = {t: t // 50 for t in range(100)}


def _reward() -> SlateReward:
    return SlateReward(None, None, GENRE_OF, ARTIST_OF, invalid_reward=-1.0)


def test_a_spread_batch_reads_as_spread():
    # four slates of 5, each track from another artist, no track served twice
    slates = np.array([[0, 10, 20, 30, 40], [1, 11, 21, 31, 41], [52, 62, 72, 82, 92], [53, 63, 73, 83, 93]])
    out = _reward().concentration(slates)
    assert out["artist_diversity"] == 1.0 and out["distinct_share"] == 1.0
    assert math.isclose(out["effective_artists"], 10.0)  # ten artists, two items each


def test_a_collapsed_batch_reads_as_collapsed():
    # every listener gets the same slate of one artist's tracks
    slates = np.tile(np.array([[0, 1, 2, 3, 4]]), (4, 1))
    out = _reward().concentration(slates)
    assert out["artist_diversity"] == 0.2 and out["distinct_share"] == 5 / 20
    assert math.isclose(out["effective_artists"], 1.0)


def test_an_empty_batch_has_no_numbers_rather_than_zeros():
    out = _reward().concentration(np.zeros((0, 5), dtype=np.int64))
    assert all(math.isnan(v) for v in out.values())
