"""The raw logs as columns: the log window, whole-day indexes, dense ids, snapshot times.

Every columnar stage (features, labels, the policy's listening sequences) reads the contract
tables the same way: time in whole UTC days from the start of the log window, ids compacted
when arrays are indexed by them. These helpers are that one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from components import contract

DAY_US = 86_400_000_000
LOOKUP_TABLE_MAX = 200_000_000  # id-space size up to which a dense lookup table is used


@dataclass(frozen=True)
class Logs:
    """The raw tables as polars frames plus the window (start, number of days)."""

    impressions: pl.DataFrame
    plays: pl.DataFrame
    users: pl.DataFrame
    tracks: pl.DataFrame
    start: datetime
    n_days: int


def window(raw_dir: Path) -> tuple[datetime, int]:
    """(first instant of the log window, UTC; number of whole days) from the manifest."""
    manifest = contract.read_manifest(raw_dir)
    return datetime.fromisoformat(manifest["window_start"]), int(manifest["days"])


def load_logs(raw_dir: Path, columns: dict[str, list[str]]) -> Logs:
    """The four contract tables (only ``columns[table]`` of each) and the log window."""
    start, n_days = window(raw_dir)
    frames = {name: pl.from_arrow(contract.read(raw_dir, name, cols)) for name, cols in columns.items()}
    return Logs(start=start, n_days=n_days, **frames)


def day_index(ts: pl.Series, window_start) -> np.ndarray:
    """Whole UTC days since ``window_start`` (int32)."""
    start = pl.Series([window_start]).cast(ts.dtype)[0]
    return ((ts - start).dt.total_days()).to_numpy().astype(np.int32)


def dense_ids(*columns: np.ndarray) -> list[np.ndarray]:
    """Map ids (shared across the given arrays) to 0..n-1; ids already dense are kept as is."""
    lo = min((int(c.min()) for c in columns if len(c)), default=0)
    hi = max((int(c.max()) for c in columns if len(c)), default=0)
    total = sum(len(c) for c in columns)
    if lo >= 0 and hi < max(4 * total, 1024) and hi < LOOKUP_TABLE_MAX:
        return [c.astype(np.int64, copy=False) for c in columns]
    uniq = np.unique(np.concatenate(columns))
    return [np.searchsorted(uniq, c) for c in columns]


def snapshot_ts(start: datetime, days: np.ndarray) -> pl.Series:
    """End of day ``d`` (= start + (d+1) days) as UTC timestamps: when day ``d``'s aggregates are known."""
    start_us = int(start.timestamp() * 1_000_000)
    us = start_us + (np.asarray(days, dtype=np.int64) + 1) * DAY_US
    return pl.Series("event_timestamp", us).cast(pl.Datetime("us", "UTC"))
