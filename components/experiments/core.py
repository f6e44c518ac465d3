"""Stage ``experiments``: build the experiment library and report how far its arms' outcomes spread.

Output: the library folder (:mod:`components.library`); metrics: per arm, mean active days
and retention over the experiment and the difference from the control arm, and the spread
across arms (the range the signals stage learns from).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from components.io import atomic_dir
from components.library import Library
from components.params import Params


def run(
    params: Params, raw_dir: Path, world_dir: Path, out_dir: Path, progress: bool = True
) -> dict[str, float]:
    if params.source.kind == "world":
        from components.experiments.simulated import simulated_library

        library = simulated_library(params, Path(raw_dir), Path(world_dir), progress)
    else:
        from components.experiments.logged import logged_library

        library = logged_library(params, Path(raw_dir))
    with atomic_dir(out_dir) as tmp:
        library.write(tmp)
    return library_metrics(library)


def library_metrics(library: Library) -> dict[str, float]:
    out: dict[str, float] = {"experiments/arms": library.experiments.height}
    if library.empty:
        return out
    arms = (
        library.users.group_by("experiment_id", "policy_id")
        .agg(users=pl.len(), active_days=pl.col("active_days").mean(), retained=pl.col("retained").mean())
        .join(
            library.experiments.select("experiment_id", "policy_id", "name", "control_policy_id"),
            on=["experiment_id", "policy_id"],
        )
    )
    control = arms.filter(pl.col("policy_id") == pl.col("control_policy_id")).select(
        "experiment_id", control_active=pl.col("active_days")
    )
    arms = arms.join(control, on="experiment_id").with_columns(
        effect=pl.col("active_days") - pl.col("control_active")
    )
    for row in arms.sort("experiment_id", "policy_id").iter_rows(named=True):
        key = f"experiments/{row['experiment_id']}/{row['name']}"
        out |= {
            f"{key}/users": row["users"],
            f"{key}/active_days": row["active_days"],
            f"{key}/retained": row["retained"],
            f"{key}/active_days_vs_control": row["effect"],
        }
    out |= {
        "experiments/experiments": library.experiments["experiment_id"].n_unique(),
        "experiments/impressions": library.impressions.height,
        "experiments/active_days_min": float(arms["active_days"].min()),
        "experiments/active_days_max": float(arms["active_days"].max()),
        "experiments/active_days_spread": float(arms["active_days"].max() - arms["active_days"].min()),
    }
    return out
