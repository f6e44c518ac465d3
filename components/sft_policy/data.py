"""Listening sequences for imitation: (context before a day, the next k new tracks from that day on).

For every (listener, day) with plays: the prompt holds the listener's features as of the
day before (the ``user_activity`` snapshot) and their last N plays before the day; the
completion is the first ``k`` distinct tracks they played from that day on that are not in
the prompt's history (a slate never repeats what the listener just heard: the decoder bans
prompt tracks, so imitation learns the same thing). Organic and recommended plays alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from components.features.sources import snapshot_ts
from components.label.signals import day_index


@dataclass(frozen=True)
class Sequences:
    user_id: np.ndarray  # (n,)
    day: np.ndarray  # (n,)
    history: np.ndarray  # (n, H) track ids, most recent last, -1 = none
    completion: np.ndarray  # (n, k) track ids
    features: pl.DataFrame  # (n rows) prompt features as of the day before

    def take(self, rows: np.ndarray) -> "Sequences":
        return Sequences(self.user_id[rows], self.day[rows], self.history[rows], self.completion[rows], self.features[rows])

    def __len__(self) -> int:
        return len(self.user_id)


def listening_sequences(plays: pl.DataFrame, activity: pl.DataFrame, features: list[str], start: datetime,
                        history_length: int, k: int) -> Sequences:
    """Build sequences from ``plays`` (user_id, ts, track_id) and ``user_activity`` snapshots."""
    plays = plays.select("user_id", "ts", "track_id").sort("user_id", "ts")
    user = plays["user_id"].to_numpy()
    track = plays["track_id"].to_numpy()
    day = day_index(plays["ts"], start)
    n = len(user)
    first_of_user = np.r_[True, user[1:] != user[:-1]]
    user_start = np.maximum.accumulate(np.where(first_of_user, np.arange(n), 0))
    starts = np.flatnonzero(np.r_[True, (user[1:] != user[:-1]) | (day[1:] != day[:-1])])  # first play of each user-day

    H, look = history_length, 4 * k
    hist_idx = starts[:, None] - H + np.arange(H)[None, :]
    history = np.where(hist_idx >= user_start[starts][:, None], track[np.clip(hist_idx, 0, n - 1)], -1)
    ahead_idx = starts[:, None] + np.arange(look)[None, :]
    same_user = (ahead_idx < n) & (user[np.clip(ahead_idx, 0, n - 1)] == user[starts][:, None])
    ahead = np.where(same_user, track[np.clip(ahead_idx, 0, n - 1)], -1)
    completion, ok = _first_new(ahead, history, k)

    rows = starts[ok]
    keys = pl.DataFrame({"user_id": user[rows], "event_timestamp": snapshot_ts(start, day[rows] - 1)})
    feats = keys.join(activity.select("user_id", "event_timestamp", *features), on=["user_id", "event_timestamp"], how="left", maintain_order="left")
    return Sequences(user[rows], day[rows], history[ok], completion, feats.select(features))


def _first_new(ahead: np.ndarray, history: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``k`` distinct ids of ``ahead`` absent from ``history``; rows with fewer are dropped."""
    n, look = ahead.shape
    keep = ahead >= 0
    keep &= ~(ahead[:, :, None] == history[:, None, :]).any(axis=2)
    for j in range(1, look):  # a loop over the look-ahead columns (~40), vectorised over rows
        keep[:, j] &= ~((ahead[:, :j] == ahead[:, j : j + 1]) & keep[:, :j]).any(axis=1)
    rank = np.cumsum(keep, axis=1)
    ok = rank[:, -1] >= k
    sel = keep & (rank <= k)
    completion = ahead[ok][sel[ok]].reshape(-1, k) if ok.any() else np.zeros((0, k), dtype=ahead.dtype)
    return completion, ok


def split_users(user_id: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for held-out listeners (a stable hash of the id)."""
    return ((user_id * 2_654_435_761 + seed * 7919) % 10_000) < int(fraction * 10_000)
