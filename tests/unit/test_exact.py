"""The world's machine-independent arithmetic agrees with NumPy's to the last few bits."""

from __future__ import annotations

import numpy as np
import pytest

from components.world.exact import exp, log, power, top_k


def _ulps(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.spacing(np.abs(b))))


def test_exp_matches_numpy_within_two_ulps_over_its_range():
    x = np.random.default_rng(0).uniform(-700, 700, 200_000)
    assert _ulps(exp(x), np.exp(x)) <= 2


def test_log_matches_numpy_within_four_ulps_near_one_and_far_from_it():
    rng = np.random.default_rng(1)
    for x in (rng.uniform(0.5, 2.0, 200_000), np.exp(rng.uniform(-700, 700, 200_000))):
        ref = np.log(x)
        keep = np.abs(ref) > 1e-3  # relative error of a log is measured away from its zero
        assert _ulps(log(x)[keep], ref[keep]) <= 4


def test_float32_in_float32_out_and_power():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    assert exp(x).dtype == np.float32 and np.allclose(
        exp(x), np.exp(x), rtol=2.5e-7, atol=0
    )  # 2 float32 ulps
    assert np.allclose(power(np.arange(1.0, 11.0), -0.5), np.arange(1.0, 11.0) ** -0.5, rtol=1e-15)


def test_log_refuses_what_it_cannot_take():
    with pytest.raises(ValueError, match="positive"):
        log(np.array([1.0, 0.0]))


def test_top_k_is_the_stable_sort_order_with_ties_and_without():
    rng = np.random.default_rng(2)
    tied = rng.integers(0, 4, size=(300, 60)).astype(np.float32)  # ties across the k-th place
    distinct = rng.normal(size=(300, 60))
    for score in (tied, distinct):
        for k in (1, 7, 60):
            assert (top_k(score, k) == np.argsort(-score, axis=1, kind="stable")[:, :k]).all()
