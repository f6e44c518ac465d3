"""The headroom analysis: how much of the truth's best the policy and the reward model's own best reach."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from components.errors import ContractError
from components.evaluate.headroom import headroom, run, sample_listeners, top_k

K = 5


def _world(n: int = 40, T: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, T))
    banned = np.zeros((n, T), dtype=bool)
    for row in banned:
        row[rng.choice(T, size=8, replace=False)] = True
    return truth, banned


def test_top_k_picks_the_best_allowed_tracks_in_order():
    scores = np.array([[0.1, 0.9, 0.5, 0.8, 0.3]])
    banned = np.array([[False, True, False, False, False]])
    assert top_k(scores, banned, 3).tolist() == [[3, 2, 4]]


def test_a_reward_model_equal_to_the_truth_and_a_policy_serving_its_argmax_leave_no_gap():
    truth, banned = _world()
    best = top_k(truth, banned, K)
    out = headroom(truth, truth.copy(), best, banned, seed=1)
    assert out["headroom/rl_gap"] == pytest.approx(0.0)
    assert out["headroom/reward_gap"] == pytest.approx(0.0)
    assert out["headroom/policy_share"] == pytest.approx(1.0)


def test_a_reward_model_that_ranks_backwards_falls_below_random_and_the_gap_is_the_reward_models():
    truth, banned = _world()
    random_policy = top_k(np.random.default_rng(2).random(truth.shape), banned, K)
    out = headroom(truth, -truth, random_policy, banned, seed=1)
    assert out["headroom/reward_argmax"] < out["headroom/random"] < out["headroom/truth_argmax"]
    assert out["headroom/reward_gap"] > out["headroom/truth_argmax"] - out["headroom/random"]
    assert (
        out["headroom/rl_gap"] < 0
    )  # RL "beats" a reward model that is wrong: nothing to win by optimising it


def test_no_slate_holds_a_banned_track():
    truth, banned = _world()
    for slates in (top_k(truth, banned, K), top_k(-truth, banned, K)):
        assert not np.take_along_axis(banned, slates, axis=1).any()
        assert all(len(set(row)) == K for row in slates.tolist())


def test_sampled_listeners_ban_their_own_history():
    users = pl.DataFrame(
        {"user_id": [7, 3, 9], "recent_tracks": [[1, 2, 3], None, [4]]},
        schema={"user_id": pl.Int64, "recent_tracks": pl.List(pl.Int64)},
    )
    who = sample_listeners(users, n=3, history_length=2, n_tracks=6, seed=0)
    assert who.user_ids.tolist() == [3, 7, 9]
    assert who.history.tolist() == [[-1, -1], [2, 3], [-1, 4]]
    assert who.banned.sum(axis=1).tolist() == [0, 2, 1]
    assert who.banned[1, [2, 3]].all() and who.banned[2, 4]


def test_headroom_on_the_tiny_world_orders_the_slates_by_what_they_know(
    params, tiny_logs, tiny_features, tiny_reward_model, tiny_sft
):
    raw, world = tiny_logs
    out = run(
        params, raw, tiny_features, world, tiny_reward_model[0], tiny_sft[0], n_listeners=30, progress=False
    )
    assert out["headroom/listeners"] == 30
    best = out["headroom/truth_argmax"]
    for name in ("random", "policy", "reward_argmax"):
        assert out[f"headroom/{name}"] <= best + 1e-9
    assert out["headroom/rl_gap"] + out["headroom/reward_gap"] == pytest.approx(best - out["headroom/policy"])


def test_headroom_refuses_raw_logs_from_another_world(
    params, tiny_logs, tiny_features, tiny_reward_model, tiny_sft, tmp_path
):
    import shutil

    import pyarrow.parquet as pq

    from components import contract

    raw, world = tiny_logs
    other = tmp_path / "raw"
    shutil.copytree(raw, other)
    tracks = pq.read_table(contract.TRACKS.file(other))
    pq.write_table(tracks.slice(0, tracks.num_rows - 1), contract.TRACKS.file(other))
    with pytest.raises(ContractError, match="tracks.parquet"):
        run(
            params,
            other,
            tiny_features,
            world,
            tiny_reward_model[0],
            tiny_sft[0],
            n_listeners=5,
            progress=False,
        )
