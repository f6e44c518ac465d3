"""Labelling throughput at ~10 million impressions, side by side with two references.

- ``encore``: ``components.reward.labels.compute_labels`` (dense grids + gathers), in memory,
  and read + label (the lazy scans of ``read_logs``: only the columns the labels use);
- ``pandas``: a vectorised pandas implementation of the same labels (``merge_asof`` by user /
  by (user, artist) — the idiomatic way), checked equal to ours before it is timed;
- ``bare_read``: reading just those same columns from parquet with the same reader (the I/O floor).

The logs come from the world (``n_users`` listeners for ``days`` days: ~10M impressions at
the defaults), cached under ``benchmarks/.cache``. Writes ``benchmarks/results/label_throughput.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
CACHE = Path("benchmarks/.cache")


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def pandas_labels(imp: pd.DataFrame, plays: pd.DataFrame, start: pd.Timestamp, n_days: int) -> pd.DataFrame:
    """The same mid-term labels with pandas: cumulative counts per key, read back with merge_asof."""
    i_day = (imp["ts"] - start).dt.days.to_numpy()
    p_day = (plays["ts"] - start).dt.days.to_numpy()
    active = (
        pd.concat(
            [
                pd.DataFrame({"user_id": imp["user_id"].to_numpy(), "day": i_day}),
                pd.DataFrame({"user_id": plays["user_id"].to_numpy(), "day": p_day}),
            ]
        )
        .drop_duplicates()
        .sort_values(["user_id", "day"])
    )
    active["n"] = active.groupby("user_id").cumcount() + 1
    pday = (
        pd.DataFrame({"user_id": plays["user_id"].to_numpy(), "day": p_day})
        .groupby(["user_id", "day"])
        .size()
    )
    pday = pday.groupby(level=0).cumsum().rename("n").reset_index()
    pair = pd.DataFrame(
        {"user_id": plays["user_id"].to_numpy(), "artist_id": plays["artist_id"].to_numpy(), "day": p_day}
    )
    pair = pair.drop_duplicates().sort_values(["user_id", "artist_id", "day"])
    pair["n"] = pair.groupby(["user_id", "artist_id"]).cumcount() + 1

    base = pd.DataFrame(
        {
            "user_id": imp["user_id"].to_numpy(),
            "artist_id": imp["artist_id"].to_numpy(),
            "row": np.arange(len(imp)),
        }
    )

    def upto(table: pd.DataFrame, by: list[str], day: np.ndarray) -> np.ndarray:
        """Cumulative count of ``table`` at or before ``day`` for each impression."""
        q = base.assign(day=day).sort_values("day")
        m = pd.merge_asof(q, table.sort_values("day"), on="day", by=by, direction="backward")
        return m.sort_values("row")["n"].fillna(0).to_numpy()

    d = i_day
    out = pd.DataFrame({"event_id": imp["event_id"].to_numpy(), "day": d})
    out["active_days_7d"] = upto(active, ["user_id"], d + 7) - upto(active, ["user_id"], d)
    out["active_days_28d"] = upto(active, ["user_id"], d + 28) - upto(active, ["user_id"], d)
    out["retained_28d"] = (upto(active, ["user_id"], d + 28) - upto(active, ["user_id"], d + 21)) > 0
    out["plays_7d"] = upto(pday, ["user_id"], d + 7) - upto(pday, ["user_id"], d)
    out["artist_days_14d"] = upto(pair, ["user_id", "artist_id"], d + 14) - upto(
        pair, ["user_id", "artist_id"], d
    )
    out["artist_return_14d"] = out["artist_days_14d"] >= 2
    last = n_days - 1
    for col, h in (
        ("active_days_7d", 7),
        ("plays_7d", 7),
        ("artist_days_14d", 14),
        ("artist_return_14d", 14),
        ("active_days_28d", 28),
        ("retained_28d", 28),
    ):
        out[col] = out[col].astype("float64").where(d + h <= last)
    return out


def _world(n_users: int, days: int) -> Path:
    from components.params import load_params
    from components.raw_logs.simulate import simulate as run

    raw = CACHE / f"label_world_{n_users}x{days}" / "raw"
    if not (raw / "manifest.json").exists():
        p = load_params(
            "params.yaml",
            {"simulate.users.n_users": n_users, "simulate.days": days, "tracking.enabled": False},
        )
        run(p, raw, raw.parent / "world")
    return raw


@app.command()
def main(
    n_users: int = typer.Option(
        26_000, help="listeners in the simulated world (~10M impressions at 56 days)"
    ),
    days: int = typer.Option(56, help="logged days"),
    repeats: int = typer.Option(3, help="timed repeats (median) for the fast paths"),
    out: Path = typer.Option(Path("benchmarks/results/label_throughput.json"), help="result file"),
) -> None:
    from components import contract
    from components.params import load_params
    from components.reward.labels import MID_TERM_COLUMNS, PLAY_COLUMNS, compute_labels, read_logs

    raw = _world(n_users, days)
    lp = load_params("params.yaml").label
    manifest = contract.read_manifest(raw)
    start = pl.Series([manifest["window_start"]]).str.to_datetime(time_zone="UTC")[0]
    n_days = int(manifest["days"])

    def scans() -> tuple[pl.LazyFrame, pl.LazyFrame]:
        imp, plays, _ = read_logs(raw)
        return imp, plays

    def read() -> tuple[pl.DataFrame, pl.DataFrame]:
        imp, plays = scans()
        return tuple(pl.collect_all([imp.select(MID_TERM_COLUMNS), plays.select(PLAY_COLUMNS)]))

    t_read, (imp, plays) = _timed(read, repeats)
    compute_labels(imp, plays, start, n_days, lp)  # warm-up (page faults of the first big allocations)
    t_ours, ours = _timed(lambda: compute_labels(imp, plays, start, n_days, lp), repeats)
    t_end_to_end, _ = _timed(lambda: compute_labels(*scans(), start, n_days, lp), repeats)

    imp_pd, plays_pd = imp.to_pandas(), plays.to_pandas()
    t_pandas, theirs = _timed(lambda: pandas_labels(imp_pd, plays_pd, pd.Timestamp(start), n_days), 1)
    for col in (
        "active_days_7d",
        "active_days_28d",
        "retained_28d",
        "plays_7d",
        "artist_days_14d",
        "artist_return_14d",
    ):
        a = ours[col].cast(pl.Float64).to_numpy()
        b = theirs[col].to_numpy(dtype=float)
        if not np.array_equal(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1)):
            raise SystemExit(f"pandas and encore disagree on {col}: the comparison would be meaningless")

    n = imp.height
    result = {
        "impressions": n,
        "plays": plays.height,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "seconds": {
            "encore_in_memory": t_ours,
            "encore_read_and_label": t_end_to_end,
            "pandas_in_memory": t_pandas,
            "bare_read": t_read,
        },
        "impressions_per_second": {
            "encore_in_memory": n / t_ours,
            "encore_read_and_label": n / t_end_to_end,
            "pandas_in_memory": n / t_pandas,
            "bare_read": n / t_read,
        },
        "read_columns": {"impressions": MID_TERM_COLUMNS, "plays": PLAY_COLUMNS},
        "speedup_vs_pandas": t_pandas / t_ours,
        "encore_label_time_over_bare_read": t_ours / t_read,
        "encore_read_and_label_over_bare_read": t_end_to_end / t_read,
        "labels_checked_equal_to_pandas": True,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
