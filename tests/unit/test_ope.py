"""Off-policy estimators: exact answers where they exist, and the mechanics (clipping, ESS, CIs)."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluate import ope


def _logged(n=2000, k=5, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.05, 0.5, size=(n, k))
    r = rng.binomial(1, 0.3, size=(n, k)).astype(float)
    q = np.clip(r + rng.normal(0, 0.3, size=(n, k)), 0, 1)
    return r, mu, q


def test_the_logging_policy_on_its_own_logs_is_estimated_exactly():
    r, mu, q = _logged()
    for e in ope.estimate(r, mu, mu, q, q, max_weight=1e9, n_bootstrap=100):
        assert e.value == pytest.approx(r.mean(), abs=1e-12), e.estimator
        assert e.low <= e.value <= e.high
        assert e.ess == pytest.approx(r.size) and e.max_weight == pytest.approx(1.0)


def test_clipping_and_effective_sample_size_are_reported():
    r, mu, q = _logged()
    pi = np.where(np.arange(mu.shape[1]) == 0, 0.9, 0.01)[None, :].repeat(len(mu), 0)
    est = {e.estimator: e for e in ope.estimate(r, pi, mu, q, q, max_weight=2.0, n_bootstrap=50)}
    raw = pi / mu
    assert est["iips"].max_weight == pytest.approx(raw.max())
    assert est["iips"].clipped_share == pytest.approx((raw > 2.0).mean())
    w = np.minimum(raw, 2.0).ravel()
    assert est["iips"].ess == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_doubly_robust_is_exact_when_the_model_is():
    """With q equal to the expected reward and pi's expectation q_pi, DR's correction has mean zero."""
    rng = np.random.default_rng(1)
    n, k = 20000, 3
    p_item = rng.uniform(0.1, 0.9, size=(n, k))
    r = rng.binomial(1, p_item).astype(float)
    mu = np.full((n, k), 0.5)
    pi = np.full((n, k), 0.5)
    dr = {e.estimator: e for e in ope.estimate(r, pi, mu, p_item, p_item, n_bootstrap=50)}["dr"]
    assert dr.value == pytest.approx(p_item.mean(), abs=0.01)


def test_paired_lift_of_a_policy_against_itself_is_zero_and_users_needed_scales():
    r, mu, q = _logged()
    est, low, high = ope.paired_lift(r, mu, mu, mu, q, q, q, 50.0, 100, 0)
    assert est == 0 and low == 0 and high == 0
    assert ope.users_needed(0.02, 1.0) == pytest.approx(4 * ope.users_needed(0.04, 1.0), rel=0.01)
    assert ope.users_needed(0.0, 1.0) == float("inf")


def test_the_bootstrap_is_the_same_in_any_block_size_and_matches_the_standard_error(monkeypatch):
    """Resamples are drawn a block at a time to bound memory: the block size must not change a
    draw, and the percentile interval of a plain mean must match its normal-theory width."""
    r, mu, _ = _logged(n=3000)
    whole = ope.estimate(r, mu, mu, n_bootstrap=400, seed=3)
    monkeypatch.setattr(ope, "_BLOCK_CELLS", 3000 * 7)  # blocks of 7 resamples
    blocked = ope.estimate(r, mu, mu, n_bootstrap=400, seed=3)
    for a, b in zip(whole, blocked):
        assert (a.low, a.high) == pytest.approx((b.low, b.high), rel=1e-12), a.estimator
    iips = whole[0]  # pi = mu: the per-slate mean reward, resampled over slates
    se = r.mean(axis=1).std() / np.sqrt(len(r))
    assert iips.high - iips.low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_the_model_free_lift_finds_a_policy_that_picks_what_was_rewarded_and_no_lift_against_itself():
    """Logged: two tracks per slot at 1/2 each, the rewarded one is the logged one half the time. A
    policy that puts all its mass on rewarded tracks is worth 1 per slot; the logging policy 1/2."""
    rng = np.random.default_rng(0)
    r = (rng.random((4000, 3)) < 0.5).astype(float)
    mu = np.full_like(r, 0.5)
    picks_rewarded = np.where(r == 1, 1.0, 0.0)
    est, low, high = ope.paired_sn_lift(r, mu, picks_rewarded, mu, 50.0, 200, seed=1)
    assert est == pytest.approx(1 - r.mean(), abs=1e-9) and 0.45 < low < est < high < 0.55
    same = ope.paired_sn_lift(r, mu, mu, mu, 50.0, 200, seed=1)
    assert same == (0.0, 0.0, 0.0)
