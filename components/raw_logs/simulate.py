"""Run the listening world with the logging policy and write the raw-log contract.

Outputs (both written atomically):
- ``raw_dir``: ``impressions/plays/users/tracks.parquet`` + ``manifest.json`` (log window, counts);
- ``world_dir``: the hidden truth (catalogue, population, end-of-log state), read only by
  ``components.world`` and the evaluation code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from components import contract
from components.io import atomic_dir, write_json
from components.params import Params
from components.world import save_world
from components.world.logs import RawLogWriter, day_start, tracks_table, users_table
from components.world.replay import logging_world, run_days


def simulate(params: Params, raw_dir: Path, world_dir: Path, progress: bool = True) -> dict[str, float]:
    """Simulate ``warmup_days`` unlogged then ``days`` logged days; return summary metrics."""
    P = params.simulate
    started = time.perf_counter()
    world, policy = logging_world(P)
    totals = {"streamed": 0, "skipped": 0, "saved": 0, "active": 0}
    with atomic_dir(raw_dir) as raw_tmp, atomic_dir(world_dir) as world_tmp:
        for _ in run_days(world, policy, -P.warmup_days, 0, "warm-up", progress):
            pass
        writer = RawLogWriter(raw_tmp, P.start_date, world.catalogue)
        try:
            for ev in run_days(world, policy, 0, P.days, "simulate", progress):
                writer.write_day(ev)
                totals["streamed"] += int(ev.imp_streamed.sum())
                totals["skipped"] += int(ev.imp_skipped.sum())
                totals["saved"] += int(ev.imp_saved.sum())
                totals["active"] += int(ev.active.sum())
        finally:
            counts = writer.close()
        pq.write_table(users_table(world.population, P.start_date), contract.USERS.file(raw_tmp))
        pq.write_table(tracks_table(world.catalogue, P.start_date), contract.TRACKS.file(raw_tmp))
        counts |= {"users": world.population.n_users, "tracks": world.catalogue.n_tracks}
        write_json(
            raw_tmp / contract.MANIFEST,
            {
                "source": "world",
                "window_start": day_start(P.start_date, 0).isoformat(),
                "window_end": day_start(P.start_date, P.days).isoformat(),
                "days": P.days,
                "slate_size": P.slate_size,
                "rows": counts,
                "params_hash": params.section_hash("simulate"),
            },
        )
        save_world(world, world_tmp, next_day=P.days)
    seconds = time.perf_counter() - started
    n_imp = max(counts["impressions"], 1)
    return {
        "sim/impressions": counts["impressions"],
        "sim/plays": counts["plays"],
        "sim/users": counts["users"],
        "sim/tracks": counts["tracks"],
        "sim/stream_rate": totals["streamed"] / n_imp,
        "sim/skip_rate": totals["skipped"] / n_imp,
        "sim/save_rate": totals["saved"] / n_imp,
        "sim/daily_active_users": totals["active"] / P.days,
        "sim/churned_fraction": float(world.state.churned.mean()),
        "sim/habits_per_user": float((world.state.habit >= P.dynamics.habit_formed).sum(axis=1).mean()),
        "sim/mean_satisfaction": float(np.mean(world.state.satisfaction)),
        "sim/seconds": seconds,
    }
