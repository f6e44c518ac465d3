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


def dense_codes(*columns: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Codes 0..n-1 for the ids of ``columns`` (one code space shared by all of them), and n.

    Why: arrays indexed by id (the labels' and features' grids) must be sized by the number of
    distinct ids, never by their magnitude — a warehouse's surrogate keys can be sparse (max id
    20M for 10k listeners), and a grid sized by the largest id would need tens of GB.

    Codes keep the ids' order (code(a) < code(b) iff a < b), so whatever is laid out by code
    comes out in id order, exactly as if it had been laid out by id. A presence table over the
    id range is used only when that range is no larger than the rows themselves (the
    simulator's ids, most surrogate keys: the fast path), the sorted distinct ids otherwise.
    """
    if not any(len(c) for c in columns):
        return [np.zeros(len(c), dtype=np.int64) for c in columns], 0
    lo = min(int(c.min()) for c in columns if len(c))
    hi = max(int(c.max()) for c in columns if len(c))
    rows = sum(len(c) for c in columns)
    if lo >= 0 and hi < max(rows, 1 << 16):
        seen = np.zeros(hi + 1, dtype=bool)
        for c in columns:
            seen[c] = True
        n = int(np.count_nonzero(seen))
        if n == hi + 1:  # already dense: the ids are their own codes
            return [c.astype(np.int64, copy=False) for c in columns], n
        code = np.cumsum(seen, dtype=np.int64) - 1
        return [code[c] for c in columns], n
    ids = pl.concat([pl.Series(c, dtype=pl.Int64).unique() for c in columns]).unique().sort().to_numpy()
    return [np.searchsorted(ids, c) for c in columns], len(ids)


def snapshot_ts(start: datetime, days: np.ndarray) -> pl.Series:
    """End of day ``d`` (= start + (d+1) days) as UTC timestamps: when day ``d``'s aggregates are known."""
    start_us = int(start.timestamp() * 1_000_000)
    us = start_us + (np.asarray(days, dtype=np.int64) + 1) * DAY_US
    return pl.Series("event_timestamp", us).cast(pl.Datetime("us", "UTC"))
