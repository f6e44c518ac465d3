"""Logged propensities must be the logging policy's actual sampling probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from components.world import Contexts, LoggingPolicy, World
from tests.conftest import tiny_params

N = 60_000
USER = 7


@pytest.fixture(scope="module")
def sampled():
    # A peaked softmax and plenty of exploration, so both branches and the renormalisation
    # after each pick change the probabilities by far more than the sampling noise.
    p = tiny_params(
        simulate__logging_policy__exploration=0.2, simulate__logging_policy__temperature=0.25
    ).simulate
    world = World.create(p)
    policy = LoggingPolicy(p.logging_policy, world.catalogue, world.population, p.seed)
    ctx = Contexts(
        user_ids=np.full(N, USER),
        session_index=np.zeros(N, np.int64),
        day=0,
        history=np.full((N, 5), -1),
        slate_size=p.slate_size,
        n_tracks=p.catalogue.n_tracks,
    )
    return policy, policy.recommend(ctx)


def _chi_square_p(observed_tracks: np.ndarray, q: np.ndarray) -> float:
    """Goodness of fit of sampled tracks to the distribution ``q`` (small bins pooled)."""
    counts = np.bincount(observed_tracks, minlength=len(q)).astype(float)
    expected = q * len(observed_tracks)
    big = expected >= 5
    obs = np.r_[counts[big], counts[~big].sum()]
    exp = np.r_[expected[big], expected[~big].sum()]
    keep = exp > 0
    return stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue


def test_slot_distribution_is_a_distribution(sampled):
    policy, slates = sampled
    for prefix in (slates.tracks[0, :0], slates.tracks[0, :1], slates.tracks[0, :7]):
        q = policy.slot_probabilities(USER, prefix)
        assert q.sum() == pytest.approx(1.0, abs=1e-9)
        assert (q[prefix] == 0).all() and (np.delete(q, prefix) > 0).all()


def test_logged_propensity_is_the_probability_of_the_pick_given_the_prefix(sampled):
    policy, slates = sampled
    for row in range(0, N, 5000):
        for j in range(slates.tracks.shape[1]):
            q = policy.slot_probabilities(USER, slates.tracks[row, :j])
            assert slates.propensities[row, j] == pytest.approx(q[slates.tracks[row, j]], rel=1e-9)


def test_first_slot_frequencies_match(sampled):
    policy, slates = sampled
    q = policy.slot_probabilities(USER, slates.tracks[0, :0])
    assert _chi_square_p(slates.tracks[:, 0], q) > 1e-4


def test_second_slot_frequencies_match_given_the_first(sampled):
    policy, slates = sampled
    first = np.bincount(slates.tracks[:, 0]).argmax()
    rows = slates.tracks[:, 0] == first
    assert rows.sum() > 3000
    q = policy.slot_probabilities(USER, np.array([first]))
    assert _chi_square_p(slates.tracks[rows, 1], q) > 1e-4


def test_propensities_are_valid_and_slates_distinct(sampled):
    _, slates = sampled
    assert ((slates.propensities > 0) & (slates.propensities <= 1)).all()
    srt = np.sort(slates.tracks, axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all()
