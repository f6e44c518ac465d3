"""Generate-then-rank serving (components.sampler.ranked): the slate it serves, the probabilities
it logs and that off-policy evaluation reads, and the A/B arm that serves it."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import torch

from components import contract
from components.policy.model import RANKER_DIR
from components.sampler.ranked import next_pick_hits, rank_slates, ranked_probabilities, slot_probabilities
from components.sampler.sampling import Sampler, allowed_counts


def by_track_id(rows: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """A ranker that is easy to check by hand: the higher the track id, the better."""
    return tracks.astype(np.float64)


def test_a_ranked_slate_is_the_best_scored_distinct_tracks_of_the_sampled_slates(policy, prompts):
    model, _, vocab = policy
    model = model.to("cpu")  # the service's device
    ids, _, catalogue = prompts
    sampler = Sampler.of(model, vocab)
    ranked = rank_slates(sampler, ids, by_track_id, 3, 1.0, 0.0, torch.Generator().manual_seed(5))
    served = sampler.to_track(ranked.tokens)

    again = torch.Generator().manual_seed(5)  # the same three draws, made by hand: one batch of 3n rows
    drawn = sampler.to_track(sampler.sample(np.tile(ids, (3, 1)), 1.0, 0.0, again).tokens)
    draws = np.split(drawn, 3)
    for row in range(len(ids)):
        candidates = np.unique(np.concatenate([d[row] for d in draws]))
        np.testing.assert_array_equal(served[row], np.sort(candidates)[::-1][: vocab.slate_size])
    assert not ranked.explored.any()
    assert np.isin(served, catalogue).all()
    assert (np.diff(served, axis=1) < 0).all()  # distinct, best first
    # three draws hold more than one slate of candidates: ranking chose among them
    assert any(
        len(np.unique(np.concatenate([d[r] for d in draws]))) > vocab.slate_size for r in range(len(ids))
    )


def test_exploration_serves_valid_slates_with_propensities_above_the_exploration_floor(policy, prompts):
    model, _, vocab = policy
    model = model.to("cpu")  # the service's device
    ids, _, catalogue = prompts
    sampler = Sampler.of(model, vocab)
    eps = 0.3
    ranked = rank_slates(sampler, ids, by_track_id, 2, 1.0, eps, torch.Generator().manual_seed(1), 4)
    served = sampler.to_track(ranked.tokens)
    srt = np.sort(served, axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all() and np.isin(served, catalogue).all()
    assert ranked.explored.any() and not ranked.explored.all()
    for row, prompt in enumerate(ids):  # never a track of the listener's history
        assert not np.isin(ranked.tokens[row], prompt).any()
    # every logged slot is possible under what was served: the exploration term is its floor
    floor = eps / allowed_counts(vocab, ids)
    assert (ranked.propensity >= floor * (1 - 1e-9)).all() and (ranked.propensity <= 1 + 1e-9).all()


def test_next_pick_hits_reads_the_best_candidate_outside_the_slots_above():
    ranked = np.array([[7, 3, 9, -1, 4], [1, 2, 3, 4, 5]])  # best first; -1 = no candidate
    slates = np.array([[3, 7, 4], [2, 1, 3]])
    # row 0: slot 0 -> best is 7 (not 3); slot 1 (3 served above) -> 7 ✓; slot 2 ({3, 7} above) -> 9 (not 4)
    # row 1: slot 0 -> 1 (not 2); slot 1 ({2} above) -> 1 ✓; slot 2 ({2, 1} above) -> 3 ✓
    np.testing.assert_array_equal(next_pick_hits(ranked, slates), [[0, 1, 0], [0, 1, 1]])


def test_slot_probabilities_condition_on_the_slots_above_and_multiply_to_the_slate():
    """Three tracks, slates of two: the policy samples two of the three uniformly (the three
    candidate sets, each once), the ranker prefers higher ids. Without exploration each slate is
    served with probability 1/3; the second slot's probability must read what the first says
    about the set (track 3 on top leaves 1 or 2 equally likely), not a fresh set's (2 w.p. 2/3)."""
    sets = [np.array([[2, 1]] * 6), np.array([[3, 1]] * 6), np.array([[3, 2]] * 6)]
    slates = np.array([[3, 2], [3, 1], [2, 1], [2, 3], [1, 2], [1, 3]])
    allowed = np.array([[3, 2]] * 6)
    p = slot_probabilities(sets, slates, allowed, 0.0)
    np.testing.assert_allclose(p[:3], [[2 / 3, 1 / 2], [2 / 3, 1 / 2], [1 / 3, 1]])
    np.testing.assert_allclose(p[3:].prod(axis=1), 0)  # never served without exploration
    # with exploration every ordered slate is possible, and the slates' probabilities sum to one
    eps = 0.3
    slate_p = slot_probabilities(sets, slates, allowed, eps).prod(axis=1)
    assert (slate_p > 0).all()
    np.testing.assert_allclose(slate_p.sum(), 1.0)
    # slate (3, 2) by hand, set by set: slot 0 then slot 1 (ranked pick or uniform draw)
    ranked_0, ranked_1 = (1 - eps) + eps / 3, (1 - eps) + eps / 2
    by_set = [eps / 3 * ranked_1, ranked_0 * eps / 2, ranked_0 * ranked_1]  # sets [2,1], [3,1], [3,2]
    np.testing.assert_allclose(slate_p[0], np.mean(by_set))


def test_ranked_probabilities_and_logged_propensities_match_how_often_each_track_is_served(policy, prompts):
    """Slot 0 of one listener served 4,000 times: the frequency of each track against off-policy
    evaluation's probability of it (one fresh candidate set per row) and against the propensity
    serving logs for it (four fresh sets per row) — both unbiased: counting the served set among
    the logged propensity's sets would lift it by (1 - p) / 5 here."""
    model, _, vocab = policy
    model = model.to("cpu")  # the service's device
    ids, _, _ = prompts
    sampler = Sampler.of(model, vocab)
    eps, n = 0.2, 4000
    one = np.repeat(ids[:1], n, axis=0)
    ranked = rank_slates(sampler, one, by_track_id, 2, 1.0, eps, torch.Generator().manual_seed(3), 4)
    served = sampler.to_track(ranked.tokens)
    pi = ranked_probabilities(
        sampler,
        one,
        by_track_id,
        served,
        allowed_counts(vocab, one),
        2,
        1.0,
        eps,
        1,
        torch.Generator().manual_seed(4),
    )
    tracks, counts = np.unique(served[:, 0], return_counts=True)
    frequent = counts >= 200
    assert frequent.sum() >= 2  # ranking concentrates slot 0 on a few tracks, not on one
    for track, count in zip(tracks[frequent], counts[frequent]):
        rows = served[:, 0] == track
        assert abs(pi[rows, 0].mean() - count / n) < 0.04, (track, pi[rows, 0].mean(), count / n)
        assert abs(ranked.propensity[rows, 0].mean() - count / n) < 0.04, (track, count / n)


def test_the_ab_arm_ranks_the_policys_samples_with_its_own_reward_model(
    tiny_sft, tiny_reward_model, tiny_raw, tiny_features, params, prompts, tmp_path
):
    """``ab.lm_decoding: rank``: a policy carrying ``ranker/`` is served generate-then-rank through
    the same function the evaluation scores, ranked by that reward model in the listener's context;
    a policy without one (SFT) is served greedy."""
    from components.evaluate.arms import policy_arm
    from components.featurestore.lookup import FeatureLookup
    from components.policy.generative import GenerativePolicy
    from components.protocol import Contexts
    from components.reward.model import RewardModel
    from components.sampler.served import RankedPolicy, history_scorer

    with_ranker = tmp_path / "policy"
    shutil.copytree(tiny_sft[0], with_ranker)
    shutil.copytree(tiny_reward_model[0], with_ranker / RANKER_DIR)
    tracks = pl.from_arrow(
        contract.read(tiny_raw, "tracks", ["track_id", "artist_id", "genre_id", "duration_ms"])
    )
    lookup = FeatureLookup.from_sources(tiny_features, params.features, tracks)
    ab = params.ab.model_copy(update={"lm_decoding": "rank", "rank_draws": 3, "lm_epsilon": 0.0})

    arm = policy_arm(with_ranker, lookup, ab, policy_id=100, seed=7)
    assert isinstance(arm, RankedPolicy)
    assert isinstance(policy_arm(tiny_sft[0], lookup, ab, 101, 7), GenerativePolicy)
    assert not isinstance(policy_arm(tiny_sft[0], lookup, ab, 101, 7), RankedPolicy)

    _, histories, catalogue = prompts
    users = lookup.users()["user_id"].to_numpy()[:40]
    n = len(users)
    contexts = Contexts(users, np.zeros(n, np.int64), 3, histories[:n], arm.vocab.slate_size, len(catalogue))
    served = arm.recommend(contexts).tracks

    reward = RewardModel.load(with_ranker / RANKER_DIR, device="cpu").with_lookup(lookup)
    score = history_scorer(reward, users, histories[:n])
    generator = torch.Generator().manual_seed(7 * 100_003 + 3)
    expected = rank_slates(arm.sampler, arm.prompts(users, histories[:n]), score, 3, 1.0, 0.0, generator)
    np.testing.assert_array_equal(served, arm.sampler.to_track(expected.tokens))
    # the reward model ranked them: within a slate, its scores never rise
    rows = np.repeat(np.arange(n), served.shape[1])
    scores = score(rows, served.ravel()).reshape(served.shape)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    # scored one pair at a time or as a batch of slates, the reward model agrees
    np.testing.assert_allclose(
        scores,
        reward.score(users, served, histories=[[t for t in h if t >= 0] for h in histories[:n]]),
        rtol=1e-5,
    )


def test_each_distinct_candidate_is_scored_once_and_every_copy_gets_its_score():
    from types import SimpleNamespace

    from components.sampler.ranked import score_distinct

    calls = []

    def score(rows, tracks):
        calls.append(len(rows))
        return rows * 1000.0 + tracks  # a different score for every (listener, track)

    as_tracks = SimpleNamespace(to_track=lambda tokens: tokens + 5)
    cands = np.array([[3, 4, 3, 9, 4], [4, 4, 4, 4, 2]])
    got = score_distinct(as_tracks, score, cands)
    assert calls == [5]  # {3, 4, 9} and {4, 2}: five pairs, one call
    np.testing.assert_array_equal(got, np.arange(2)[:, None] * 1000.0 + cands + 5)
