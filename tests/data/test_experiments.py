"""The experiment library: simulated arms forked from the logged world, or the arms of real logs."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import polars as pl
import pytest

from components import contract
from components.errors import ContractError
from components.library import ID_BASE, Library
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def library(tiny_experiments) -> Library:
    return Library.read(tiny_experiments)


def test_the_simulated_library_holds_every_arm_with_the_same_listeners(library, params, tiny_raw):
    arms = library.experiments.sort("policy_id")
    assert arms["policy_id"].to_list() == [0, *sorted(a.policy_id for a in params.experiments.arms)]
    assert (arms["control_policy_id"] == 0).all()
    start = json.loads((tiny_raw / "manifest.json").read_text())["window_start"]
    t0 = pl.Series([start]).str.to_datetime(time_zone="UTC")[0] + timedelta(days=params.experiments.start_day)
    assert (arms["start"] == t0).all() and (arms["end"] == t0 + timedelta(days=params.experiments.days)).all()
    per_arm = library.users.group_by("policy_id").agg(pl.col("user_id").sort())
    first = per_arm["user_id"][0].to_list()
    assert len(first) == params.experiments.participants
    assert all(u.to_list() == first for u in per_arm["user_id"])  # common random numbers: the same listeners
    imp = library.impressions
    assert imp["policy_id"].n_unique() == arms.height
    assert imp["ts"].min() >= t0 and imp["ts"].max() < t0 + timedelta(days=params.experiments.days)
    assert ((imp["propensity"] > 0) & (imp["propensity"] <= 1)).all()
    assert imp["event_id"].min() >= ID_BASE and imp["event_id"].n_unique() == imp.height
    assert library.users["active_days"].max() <= params.experiments.days
    # the arms really differ: popularity-only listeners hear more popular, fewer affine tracks
    spread = library.users.group_by("policy_id").agg(pl.col("active_days").mean())["active_days"]
    assert spread.max() - spread.min() > 0.5


def test_the_replay_reaches_exactly_the_logged_state(tiny_logs, params):
    from components.world.policies import LoggingPolicy
    from components.world.replay import world_at
    from components.world.truth import simulate_params

    raw, world_dir = tiny_logs
    sim = simulate_params(world_dir)
    day = 9
    world = world_at(sim, day, progress=False)
    ev = world.step(day, LoggingPolicy(sim.logging_policy, world.catalogue, world.population, sim.seed))
    imp = pl.read_parquet(contract.IMPRESSIONS.file(raw))
    start = imp["ts"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    logged = imp.filter(((pl.col("ts") - pl.lit(start)).dt.total_days() == day)).sort(
        "session_id", "position"
    )
    assert logged["track_id"].to_list() == ev.imp_track.tolist()
    assert logged["user_id"].to_list() == ev.imp_user.tolist()


def test_the_library_ends_before_the_log_does(tiny_logs, tmp_path, params):
    from components.errors import ParamsError
    from components.experiments.core import run

    raw, world = tiny_logs
    late = tiny_params(experiments__start_day=10)
    with pytest.raises(ParamsError, match="must end before the log does"):
        run(late, raw, world, tmp_path / "lib", progress=False)
    assert not (tmp_path / "lib").exists()


def _logs_with_experiment(tiny_raw, tmp_path, arms=(0, 21, 22), overlap=False):
    """The tiny logs relabelled as a real A/B test: days 7-20, users split into ``arms`` by id."""
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw)
    imp = pl.read_parquet(contract.IMPRESSIONS.file(raw))
    t0 = imp["ts"].min().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=7)
    t1 = t0 + timedelta(days=14)
    inside = pl.col("ts").is_between(t0, t1, closed="left")
    policy = pl.when(inside).then(pl.col("user_id") % len(arms)).otherwise(-1)
    if overlap:  # one listener sees two arms
        policy = (
            pl.when(inside & (pl.col("user_id") == imp["user_id"][0]) & (pl.col("position") == 0))
            .then((pl.col("user_id") + 1) % len(arms))
            .otherwise(policy)
        )
    mapping = {i: a for i, a in enumerate(arms)}
    imp = (
        imp.with_columns(slot=policy)
        .with_columns(
            policy_id=pl.when(pl.col("slot") >= 0)
            .then(pl.col("slot").replace_strict(mapping, default=None))
            .otherwise(pl.col("policy_id"))
            .cast(pl.Int64)
        )
        .drop("slot")
    )
    imp.write_parquet(contract.IMPRESSIONS.file(raw))
    pl.DataFrame(
        {
            "experiment_id": [5] * len(arms),
            "policy_id": list(arms),
            "name": [f"arm{a}" for a in arms],
            "control_policy_id": [arms[0]] * len(arms),
            "start": [t0] * len(arms),
            "end": [t1] * len(arms),
        }
    ).write_parquet(contract.EXPERIMENTS.file(raw))
    return raw


def test_real_logs_bring_their_experiments_table(tiny_raw, tmp_path):
    from components.experiments.core import run

    raw = _logs_with_experiment(tiny_raw, tmp_path)
    logs = tiny_params(source__kind="logs")
    metrics = run(logs, raw, tmp_path / "no_world", tmp_path / "lib", progress=False)
    lib = Library.read(tmp_path / "lib")
    assert lib.manifest["source"] == "logs" and metrics["experiments/arms"] == 3
    users = lib.users.group_by("policy_id").agg(pl.col("user_id"))
    seen = [set(u) for u in users["user_id"].to_list()]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1 :])  # disjoint arms
    assert (lib.impressions["ts"] >= lib.experiments["start"][0]).all()


def test_a_listener_in_two_arms_is_named(tiny_raw, tmp_path):
    from components.experiments.core import run

    raw = _logs_with_experiment(tiny_raw, tmp_path, overlap=True)
    with pytest.raises(
        ContractError, match=r"1 listener\(s\) were served by two arms of the same experiment"
    ):
        run(tiny_params(source__kind="logs"), raw, tmp_path / "w", tmp_path / "lib", progress=False)
    assert not (tmp_path / "lib").exists()


def test_logs_without_experiments_give_an_empty_library_that_says_why(tiny_raw, tmp_path):
    from components.experiments.core import run

    metrics = run(
        tiny_params(source__kind="logs"), tiny_raw, tmp_path / "w", tmp_path / "lib", progress=False
    )
    lib = Library.read(tmp_path / "lib")
    assert lib.empty and metrics["experiments/arms"] == 0 and "no past experiments" in lib.manifest["note"]


def test_the_scorecard_and_the_weights_come_out_of_the_tiny_library(tiny_signals):
    weights = json.loads((tiny_signals / "weights.json").read_text())
    card = json.loads((tiny_signals / "scorecard.json").read_text())
    assert card["arms"] == 14 and set(card["signals"]) >= {"streamed", "active_days_7d", "discovery"}
    assert weights["active"]["source"] in ("learned", "fixed") and weights["active"]["columns"]
    assert all(
        w >= 0 or c in ("skipped", "slate_artist_concentration", "served_repeat_7d")
        for c, w in weights["learned"]["columns"].items()
    )
    page = (tiny_signals.parent / "signals.html").read_text()
    assert "Scorecard" in page and "data:image/png;base64" in page
