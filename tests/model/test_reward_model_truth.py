"""The reward model against the world's truth: the check the evaluation reports every run."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from components import contract
from components.evaluate.truth import reward_model_truth
from components.featurestore.lookup import FeatureLookup
from components.reward.model import RewardModel
from components.world import load_world
from components.world.response import true_long_term_value

K = 10


class _TruthScorer:
    """A stand-in reward model that scores with the truth itself (times ``sign``): the check must
    read it as perfect (+1) or perfectly wrong (-1)."""

    def __init__(self, world_dir, sign: float):
        world, _ = load_world(world_dir)
        self.args = (world.params.dynamics, world.catalogue, world.population)
        self.habit_weight, self.sign = world.params.oracle.habit_weight, sign

    def score(self, users: np.ndarray, slates: np.ndarray) -> np.ndarray:
        users = np.repeat(users, slates.shape[1])
        value = true_long_term_value(*self.args, users, slates.ravel(), self.habit_weight)
        return self.sign * value.reshape(slates.shape)


def _lookup(params, raw, features) -> FeatureLookup:
    tracks = pl.from_arrow(contract.read(raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    return FeatureLookup.from_sources(features, params.features, tracks)


def _logged(world_dir, lookup, n: int = 50):
    """n slates of K random tracks for n listeners, standing in for logged slates."""
    rng = np.random.default_rng(3)
    users = rng.choice(lookup.users()["user_id"].to_numpy(), size=n, replace=False)
    tracks = rng.integers(0, load_world(world_dir)[0].catalogue.n_tracks, size=(n, K))
    return np.repeat(users, K), tracks.ravel()


def test_a_scorer_that_is_the_truth_scores_one_and_its_negation_minus_one(params, tiny_logs, tiny_features):
    raw, world = tiny_logs
    lookup = _lookup(params, raw, tiny_features)
    users, tracks = _logged(world, lookup)
    for sign in (1.0, -1.0):
        scorer = _TruthScorer(world, sign)
        logged_scores = scorer.score(users[::K], tracks.reshape(-1, K)).ravel()
        out = reward_model_truth(scorer, world, lookup, users, tracks, logged_scores, K, 200, seed=5)
        for key in ("random/spearman", "random/spearman_within", "logged/spearman", "logged/spearman_within"):
            assert math.isclose(out[key], sign, abs_tol=1e-6), (sign, key, out[key])
        assert out["random/pairs"] == 200 * K and out["logged/pairs"] == len(tracks)


def test_noise_scores_near_zero_and_the_trained_model_is_measured(
    params, tiny_logs, tiny_features, tiny_reward_model
):
    raw, world = tiny_logs
    lookup = _lookup(params, raw, tiny_features)
    users, tracks = _logged(world, lookup)

    class Noise:
        def score(self, users, slates):
            return np.random.default_rng(9).normal(size=slates.shape)

    noise = reward_model_truth(
        Noise(),
        world,
        lookup,
        users,
        tracks,
        np.random.default_rng(1).normal(size=len(tracks)),
        K,
        300,
        seed=5,
    )
    assert abs(noise["random/spearman"]) < 0.1 and abs(noise["random/spearman_within"]) < 0.1

    model = RewardModel.load(tiny_reward_model[0]).with_lookup(lookup)
    logged_scores = model.score(users[::K], tracks.reshape(-1, K)).ravel()
    out = reward_model_truth(model, world, lookup, users, tracks, logged_scores, K, 300, seed=5)
    assert all(-1 <= out[key] <= 1 for key in ("random/spearman", "logged/spearman")), out
    again = reward_model_truth(model, world, lookup, users, tracks, logged_scores, K, 300, seed=5)
    assert again == out  # seeded: the same listeners and tracks, the same numbers
