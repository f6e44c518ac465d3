"""The simulated library: the world's past A/B tests, arms forked from the same logged day.

The world is replayed under its logging policy to the start of ``experiments.start_day``
(exactly the state the logs had then), and every arm — the logging policy as control, and
the variants of :mod:`components.world.library` — runs on its own copy for
``experiments.days`` with the same participants and common random numbers. The library
ends before the log does, so it lies in the past of everything evaluation measures.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from components import contract
from components.errors import ParamsError
from components.library import ID_BASE, Library, outcomes
from components.logs import window
from components.params import Params
from components.world import run_ab
from components.world.library import library_policies
from components.world.replay import world_at
from components.world.truth import simulate_params

EXPERIMENT_ID = 1


def simulated_library(params: Params, raw_dir: Path, world_dir: Path, progress: bool = True) -> Library:
    ep = params.experiments
    sim = simulate_params(world_dir)
    if ep.start_day + ep.days > sim.days:
        raise ParamsError(
            f"experiments.start_day ({ep.start_day}) + experiments.days ({ep.days}) must be <= simulate.days "
            f"({sim.days}): the library must end before the log does, in the past of the evaluation."
        )
    world = world_at(sim, ep.start_day, progress)
    policies = library_policies(ep.arms, sim.logging_policy, world.catalogue, world.population, sim.seed)
    result = run_ab(
        world, policies, ep.days, ep.seed, ep.start_day, ep.participants, progress=progress, record=True
    )
    log_start, _ = window(raw_dir)
    t0 = log_start + timedelta(days=ep.start_day)
    arms = [{"policy_id": p.policy_id, "name": name} for name, p in policies.items()]
    control = policies["control"].policy_id
    experiments = (
        pl.DataFrame(arms)
        .with_columns(
            experiment_id=pl.lit(EXPERIMENT_ID, pl.Int64),
            control_policy_id=pl.lit(control, pl.Int64),
            start=pl.lit(t0),
            end=pl.lit(t0 + timedelta(days=ep.days)),
        )
        .select(contract.EXPERIMENTS.column_names)
    )
    impressions = _impressions(result.impressions, t0)
    plays = _plays(result.plays, policies, t0)
    participants = result.outcomes["control"]["user_id"]
    arm_users = pl.DataFrame(
        {"experiment_id": EXPERIMENT_ID, "policy_id": [a["policy_id"] for a in arms]}
    ).join(pl.DataFrame({"user_id": participants}), how="cross")
    before = pl.from_arrow(contract.read(raw_dir, "impressions", ["user_id", "ts"]))
    before = pl.concat([before, pl.from_arrow(contract.read(raw_dir, "plays", ["user_id", "ts"]))])
    users = outcomes(
        arm_users,
        impressions,
        plays,
        experiments,
        before.filter(pl.col("user_id").is_in(participants.implode())),
    )
    manifest = {
        "source": "world",
        "window_start": log_start.isoformat(),
        "start_day": ep.start_day,
        "days": ep.days,
        "participants": len(participants),
        "arms": len(arms),
        "rows": {"impressions": impressions.height, "plays": plays.height},
    }
    return Library(experiments, impressions, plays, users, manifest)


def _ts(t0, seconds: pl.Expr) -> pl.Expr:
    return pl.lit(t0).cast(pl.Datetime("us", "UTC")) + pl.duration(
        microseconds=(seconds * 1e6).cast(pl.Int64)
    )


def _impressions(per_arm: dict[str, pl.DataFrame], t0) -> pl.DataFrame:
    """Every arm's recorded impressions as contract rows; ids unique across arms, apart from the raw logs'."""
    frames, sessions = [], 0
    for arm, frame in per_arm.items():
        session = frame["session"].rank("dense").cast(pl.Int64) - 1 + sessions
        sessions += int(session.max()) + 1 if frame.height else 0
        frames.append(frame.with_columns(session_id=session + ID_BASE))
    rows = pl.concat(frames).sort("session_id", "position")
    return rows.select(
        event_id=pl.int_range(pl.len(), dtype=pl.Int64) + ID_BASE,
        user_id=pl.col("user_id").cast(pl.Int64),
        ts=_ts(t0, pl.col("seconds")),
        session_id="session_id",
        position=pl.col("position").cast(pl.Int64),
        track_id=pl.col("track_id").cast(pl.Int64),
        artist_id=pl.col("artist_id").cast(pl.Int64),
        policy_id="policy_id",
        propensity=pl.col("propensity").cast(pl.Float64),
        streamed="streamed",
        ms_played=pl.col("ms_played").cast(pl.Int64),
        skipped="skipped",
        saved="saved",
    )


def _plays(per_arm: dict[str, pl.DataFrame], policies: dict, t0) -> pl.DataFrame:
    sources = np.array(contract.PLAY_SOURCES)
    frames = [
        frame.with_columns(policy_id=pl.lit(policies[arm].policy_id, pl.Int64))
        for arm, frame in per_arm.items()
    ]
    rows = pl.concat(frames)
    return rows.select(
        user_id=pl.col("user_id").cast(pl.Int64),
        ts=_ts(t0, pl.col("seconds")),
        track_id=pl.col("track_id").cast(pl.Int64),
        artist_id=pl.col("artist_id").cast(pl.Int64),
        ms_played=pl.col("ms_played").cast(pl.Int64),
        source=pl.Series(sources[rows["source"].to_numpy()]),
        policy_id="policy_id",
    ).sort("policy_id", "user_id", "ts")
