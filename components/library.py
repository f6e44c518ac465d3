"""The experiment library on disk: past A/B tests, in the raw-log contract, one folder.

Written by the ``experiments`` stage — from the simulated world (arms forked from the same
day of the logged world, the same listeners in every arm) or from the experiments table of
real logs (arms with disjoint listeners) — and read by ``signals`` (which signals predict
the arms' long-term outcomes?) and ``reward_model`` (which also learns from the arms' logs).

- ``experiments.parquet``: the contract's ``experiments`` table (one row per arm);
- ``impressions.parquet``: the arms' impressions (contract columns; ``policy_id`` = the arm);
- ``plays.parquet``: the arms' plays (contract columns + ``policy_id``: the arm they happened in);
- ``users.parquet``: one row per (experiment, arm, listener): ``pre_active_days`` (the same
  length of time before the start), ``active_days`` over the experiment, ``retained``
  (active in its last 7 days) — the long-term outcomes;
- ``manifest.json``: where it came from and its size.
Event and session ids of simulated arms start at ``ID_BASE``, apart from the raw logs'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from components.errors import EncoreError

EXPERIMENTS, IMPRESSIONS, PLAYS, USERS, MANIFEST = (
    "experiments.parquet",
    "impressions.parquet",
    "plays.parquet",
    "users.parquet",
    "manifest.json",
)
ID_BASE = 2**40
# written by the signals stage beside weights.json: the library's impressions, labelled like the logs
LIBRARY_LABELS = "library_labels.parquet"
RETAINED_DAYS = 7  # retained = active in the experiment's last week


@dataclass(frozen=True)
class Library:
    experiments: pl.DataFrame
    impressions: pl.DataFrame
    plays: pl.DataFrame
    users: pl.DataFrame
    manifest: dict

    @property
    def empty(self) -> bool:
        return self.experiments.height == 0

    def write(self, folder: Path) -> None:
        for name, frame in (
            (EXPERIMENTS, self.experiments),
            (IMPRESSIONS, self.impressions),
            (PLAYS, self.plays),
            (USERS, self.users),
        ):
            frame.write_parquet(Path(folder) / name, compression="zstd")
        (Path(folder) / MANIFEST).write_text(
            json.dumps(self.manifest, indent=2, sort_keys=True, default=str) + "\n"
        )

    @classmethod
    def read(cls, folder: Path) -> "Library":
        folder = Path(folder)
        if not (folder / MANIFEST).exists():
            raise EncoreError(f"{folder}: no experiment library here; the experiments stage must run first.")
        return cls(
            *(pl.read_parquet(folder / n) for n in (EXPERIMENTS, IMPRESSIONS, PLAYS, USERS)),
            json.loads((folder / MANIFEST).read_text()),
        )


def outcomes(
    arm_users: pl.DataFrame,
    impressions: pl.DataFrame,
    plays: pl.DataFrame,
    experiments: pl.DataFrame,
    before: pl.DataFrame,
) -> pl.DataFrame:
    """Per (experiment, arm, listener): active days over the experiment, retained, and the active
    days in as long a period before it (``before``: the listener's raw activity, ``user_id, ts``).

    ``arm_users``: experiment_id, policy_id, user_id (every participant, active or not).
    Active = any impression or play that day (as the labels define it).
    """
    win = experiments.select("experiment_id", "policy_id", "start", "end")
    activity = pl.concat(
        [impressions.select("policy_id", "user_id", "ts"), plays.select("policy_id", "user_id", "ts")]
    )
    day = pl.col("ts").dt.truncate("1d")
    during = (
        activity.join(win, on="policy_id")
        .filter((pl.col("ts") >= pl.col("start")) & (pl.col("ts") < pl.col("end")))
        .group_by("experiment_id", "policy_id", "user_id")
        .agg(
            active_days=day.n_unique(),
            retained=(pl.col("ts") >= pl.col("end") - pl.duration(days=RETAINED_DAYS)).any(),
        )
    )
    spans = win.select("experiment_id", "policy_id", "start", span=pl.col("end") - pl.col("start"))
    pre = (
        arm_users.join(spans, on=["experiment_id", "policy_id"])
        .join(before.select("user_id", "ts"), on="user_id")
        .filter((pl.col("ts") < pl.col("start")) & (pl.col("ts") >= pl.col("start") - pl.col("span")))
        .group_by("experiment_id", "policy_id", "user_id")
        .agg(pre_active_days=day.n_unique())
    )
    keys = ["experiment_id", "policy_id", "user_id"]
    return (
        arm_users.join(during, on=keys, how="left")
        .join(pre, on=keys, how="left")
        .with_columns(
            pl.col("active_days").fill_null(0).cast(pl.Int64),
            pl.col("retained").fill_null(False),
            pl.col("pre_active_days").fill_null(0).cast(pl.Int64),
        )
        .sort(keys)
    )
