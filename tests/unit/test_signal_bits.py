"""The pair signals count played days from bitsets: any log length, any window start."""

from __future__ import annotations

import numpy as np
import pytest

from components.reward.signals import _count_days, _day_bits, _days_from


@pytest.mark.parametrize("n_days", [1, 20, 63, 64, 65, 150])
def test_window_counts_from_bits_equal_a_recount(n_days):
    rng = np.random.default_rng(n_days)
    played = rng.random((40, n_days)) < 0.3
    row = rng.integers(0, 40, 5000)
    first = rng.integers(1, n_days + 1, 5000).astype(np.int32)  # day d + 1 for d in [0, n_days)
    after = _days_from(_day_bits(played), row, first)
    for horizon in (1, 7, 14, 64):
        expected = [played[r, f : f + horizon].sum() for r, f in zip(row, first)]
        assert np.array_equal(_count_days(after, horizon), expected), horizon


def test_a_horizon_longer_than_a_word_is_refused():
    with pytest.raises(ValueError, match="1..64"):
        _count_days(np.zeros(3, dtype=np.uint64), 65)
