"""Behavioural tests of the listening world: the consequences SYSTEM.md section 4 demands."""

from __future__ import annotations

import numpy as np
import pytest

from components.world import ClickGreedyOracle, LoggingPolicy, LongTermOracle, Slates, World, run_ab
from components.world.response import respond
from tests.conftest import tiny_params


def _warm_world(n_users: int = 1500, **overrides) -> tuple[World, LoggingPolicy]:
    p = tiny_params(simulate__users__n_users=n_users, **overrides).simulate
    world = World.create(p)
    policy = LoggingPolicy(p.logging_policy, world.catalogue, world.population, p.seed)
    for day in range(-p.warmup_days, p.days):
        world.step(day, policy)
    return world, policy


@pytest.fixture(scope="module")
def warm() -> tuple[World, LoggingPolicy]:
    return _warm_world()


def test_click_oracle_wins_clicks_but_long_term_oracle_wins_active_days(warm):
    world, _ = warm
    arms = {"click": ClickGreedyOracle(), "long_term": LongTermOracle()}
    day1 = run_ab(world, arms, horizon_days=1, seed=11, start_day=world.params.days, progress=False)
    rate = {a: df["rec_streams"].sum() / df["impressions"].sum() for a, df in day1.outcomes.items()}
    lift = day1.lift("long_term", "click", "rec_streams")
    assert rate["click"] > rate["long_term"] and lift.low > 0, (rate, lift)

    month = run_ab(world, arms, horizon_days=28, seed=11, start_day=world.params.days, progress=False)
    active = month.lift("click", "long_term", "active_days")
    assert active.low > 0, f"long-term oracle should win on 28-day active days: {active}"


def test_same_policy_in_two_arms_gives_identical_outcomes(warm):
    """Common random numbers: with identical policies every per-user outcome is identical."""
    world, policy = warm
    res = run_ab(
        world, {"a": policy, "b": policy}, horizon_days=5, seed=3, start_day=world.params.days, progress=False
    )
    assert res.outcomes["a"].equals(res.outcomes["b"])
    lift = res.lift("a", "b")
    assert lift.estimate == 0 and lift.low == 0 and lift.high == 0


def test_habits_build_on_enjoyed_days_and_decay_otherwise(warm):
    world, policy = warm
    w = world.clone()
    dyn = w.params.dynamics
    before = w.state.habit.copy()
    ev = w.step(w.params.days, policy)
    enjoyed = np.zeros_like(before, dtype=bool)
    ok = ev.play_value > dyn.habit_enjoy_threshold
    enjoyed[ev.play_user[ok], w.catalogue.track_artist[ev.play_track[ok]]] = True
    assert enjoyed.any()
    decayed = before * np.float32(dyn.habit_decay)
    np.testing.assert_allclose(w.state.habit[~enjoyed], decayed[~enjoyed], rtol=1e-6)
    assert (w.state.habit[enjoyed] > decayed[enjoyed]).all()


def test_habits_form_under_a_good_policy(warm):
    world, _ = warm
    formed_before = (world.state.habit >= world.params.dynamics.habit_formed).sum()
    res = run_ab(
        world, {"lt": LongTermOracle()}, horizon_days=14, seed=5, start_day=world.params.days, progress=False
    )
    assert res.outcomes["lt"]["habits_formed"].sum() > 0.05 * formed_before


def test_fatigue_lowers_stream_probability(warm):
    world, _ = warm
    w = world.clone()
    users = np.arange(200)
    fresh = respond(w.params.dynamics, w.catalogue, w.population, w.state, users).p_stream
    w.state.fatigue += 3.0
    tired = respond(w.params.dynamics, w.catalogue, w.population, w.state, users).p_stream
    assert (tired < fresh).all()
    # and in the world itself, with the same random numbers: fewer streams when fatigued
    a, b = world.clone(), world.clone()
    b.state.fatigue += 3.0
    oracle_a, oracle_b = ClickGreedyOracle(), ClickGreedyOracle()
    oracle_a.bind(a)
    oracle_b.bind(b)
    ev_a, ev_b = a.step(world.params.days, oracle_a), b.step(world.params.days, oracle_b)
    assert ev_b.imp_streamed.mean() < ev_a.imp_streamed.mean() - 0.02


def test_a_churned_listener_never_returns():
    world, policy = _warm_world(n_users=600, simulate__dynamics__churn_bias=-3.0)
    churn_day = np.full(world.population.n_users, np.inf)
    churn_day[world.state.churned] = -1
    seen_after_churn = 0
    for day in range(world.params.days, world.params.days + 10):
        before = world.state.churned.copy()
        ev = world.step(day, policy)
        churn_day[world.state.churned & ~before] = day
        seen = np.union1d(ev.imp_user, ev.play_user)
        seen_after_churn += int((churn_day[seen] <= day).sum())
    assert np.isfinite(churn_day).sum() > 20, "the test needs some churn to be meaningful"
    assert seen_after_churn == 0


def test_world_refuses_malformed_slates(warm):
    world, _ = warm

    class Repeats:
        policy_id = 99

        def recommend(self, ctx):
            return Slates(tracks=np.zeros((len(ctx.user_ids), ctx.slate_size), np.int64))

    with pytest.raises(ValueError, match="repeated track"):
        world.clone().step(world.params.days, Repeats())


def test_artist_fatigue_builds_on_the_artists_played_and_wears_only_them_out():
    """With ``artist_fatigue_gain`` > 0, a play tires its artist (decaying like genre fatigue), and a
    tired artist's tracks stream less while other artists of the same genre do not; at 0 the
    state holds no artist fatigue at all (the default world is unchanged)."""
    assert _warm_world(n_users=50)[0].state.artist_fatigue.shape == (50, 0)
    world, policy = _warm_world(
        n_users=400,
        simulate__dynamics__artist_fatigue_gain=0.5,
        simulate__dynamics__artist_fatigue_decay=0.7,
    )
    w, dyn, cat = world.clone(), world.params.dynamics, world.catalogue
    before = w.state.artist_fatigue.copy()
    ev = w.step(w.params.days, policy)
    plays = np.zeros_like(before)
    np.add.at(plays, (ev.play_user, cat.track_artist[ev.play_track]), 1.0)
    expected = dyn.artist_fatigue_decay * before + dyn.artist_fatigue_gain * plays
    np.testing.assert_allclose(w.state.artist_fatigue, expected, rtol=1e-5, atol=1e-6)
    assert (plays > 0).any()

    users = np.arange(100)
    tired_artist = 0
    same_genre = (cat.track_genre == cat.track_genre[cat.track_artist == tired_artist][0]) & (
        cat.track_artist != tired_artist
    )
    fresh = respond(dyn, cat, world.population, w.state, users).p_stream
    w.state.artist_fatigue[users, tired_artist] += 3.0
    tired = respond(dyn, cat, world.population, w.state, users).p_stream
    of_artist = cat.track_artist == tired_artist
    assert (tired[:, of_artist] < fresh[:, of_artist]).all()
    np.testing.assert_array_equal(tired[:, same_genre], fresh[:, same_genre])
