"""The library of real logs: the arms listed in the logs' ``experiments`` table.

An arm is the impressions its ``policy_id`` served inside ``[start, end)``; its listeners are
the users those impressions went to (at most ``experiments.max_arm_users`` per arm, a seeded
sample), their plays in the window are the arm's plays. A listener seen in two arms of one
experiment, an arm without impressions, or a control that is not one of the experiment's
arms are errors that name the experiment and the count.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from components import contract
from components.errors import ContractError
from components.library import Library, outcomes
from components.logs import window
from components.params import Params


def logged_library(params: Params, raw_dir: Path) -> Library:
    ep = params.experiments
    log_start, _ = window(raw_dir)
    table = contract.EXPERIMENTS.file(raw_dir)
    if not table.exists():
        empty = Library(
            pl.from_arrow(contract.EXPERIMENTS.schema.empty_table()),
            *(pl.DataFrame() for _ in range(3)),
            {
                "source": "logs",
                "window_start": log_start.isoformat(),
                "arms": 0,
                "note": f"{table} not found: no past experiments, so no signal can be validated",
            },
        )
        return empty
    experiments = pl.from_arrow(contract.read(raw_dir, "experiments"))
    _check(experiments, table)
    arms = experiments.select("experiment_id", "policy_id", "start", "end")
    imp = pl.from_arrow(contract.read(raw_dir, "impressions")).join(arms, on="policy_id")
    imp = imp.filter((pl.col("ts") >= pl.col("start")) & (pl.col("ts") < pl.col("end")))
    arm_users = (
        imp.select("experiment_id", "policy_id", "user_id")
        .unique()
        .sort("experiment_id", "policy_id", "user_id")
    )
    counts = arm_users.group_by("experiment_id", "policy_id").len()
    missing = arms.join(counts, on=["experiment_id", "policy_id"], how="anti")
    if missing.height:
        raise ContractError(
            f"{table}: {missing.height} arm(s) served no impression in their window, e.g. "
            f"experiment {missing['experiment_id'][0]}, policy_id {missing['policy_id'][0]}."
        )
    twice = arm_users.group_by("experiment_id", "user_id").len().filter(pl.col("len") > 1)
    if twice.height:
        raise ContractError(
            f"{table}: {twice.height} listener(s) were served by two arms of the same experiment "
            f"(e.g. user {twice['user_id'][0]} in experiment {twice['experiment_id'][0]}); "
            "an A/B test assigns each listener to one arm."
        )
    arm_users = arm_users.filter(
        pl.int_range(pl.len()).shuffle(seed=ep.seed).over("experiment_id", "policy_id") < ep.max_arm_users
    )
    imp = imp.join(arm_users, on=["experiment_id", "policy_id", "user_id"], how="semi")
    plays = (
        pl.from_arrow(contract.read(raw_dir, "plays"))
        .join(arm_users, on="user_id")
        .join(arms, on=["experiment_id", "policy_id"])
        .filter((pl.col("ts") >= pl.col("start")) & (pl.col("ts") < pl.col("end")))
    )
    before = pl.concat(
        [
            pl.from_arrow(contract.read(raw_dir, "impressions", ["user_id", "ts"])),
            pl.from_arrow(contract.read(raw_dir, "plays", ["user_id", "ts"])),
        ]
    ).join(arm_users.select("user_id").unique(), on="user_id", how="semi")
    impressions = imp.select(contract.IMPRESSIONS.column_names)
    plays = plays.select(*contract.PLAYS.column_names, "policy_id")
    users = outcomes(arm_users, impressions, plays, experiments, before)
    manifest = {
        "source": "logs",
        "window_start": log_start.isoformat(),
        "arms": experiments.height,
        "experiments": experiments["experiment_id"].n_unique(),
        "rows": {"impressions": impressions.height, "plays": plays.height, "users": users.height},
    }
    return Library(experiments, impressions, plays, users, manifest)


def _check(experiments: pl.DataFrame, where: Path) -> None:
    bad_window = experiments.filter(pl.col("start") >= pl.col("end"))
    if bad_window.height:
        raise ContractError(
            f"{where}: {bad_window.height} arm(s) with start >= end, "
            f"e.g. experiment {bad_window['experiment_id'][0]}."
        )
    no_control = experiments.filter(
        ~pl.col("control_policy_id").is_in(pl.col("policy_id").implode()).over("experiment_id")
    )
    if no_control.height:
        raise ContractError(
            f"{where}: {no_control.height} row(s) name a control_policy_id that is not an arm of "
            f"their experiment, e.g. experiment {no_control['experiment_id'][0]}."
        )
    dup = experiments.group_by("experiment_id", "policy_id").len().filter(pl.col("len") > 1)
    if dup.height:
        raise ContractError(f"{where}: {dup.height} (experiment_id, policy_id) pair(s) appear twice.")
