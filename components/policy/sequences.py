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
from pathlib import Path

import numpy as np
import polars as pl

from components import contract
from components.featurestore.definitions import SOURCE_FILES, SOURCES_DIR
from components.logs import day_index, snapshot_ts, window
from components.params import SFTParams


@dataclass(frozen=True)
class Sequences:
    user_id: np.ndarray  # (n,)
    day: np.ndarray  # (n,)
    history: np.ndarray  # (n, H) track ids, most recent last, -1 = none
    completion: np.ndarray  # (n, k) track ids
    features: pl.DataFrame  # (n rows) prompt features as of the day before

    def take(self, rows: np.ndarray) -> "Sequences":
        return Sequences(
            self.user_id[rows], self.day[rows], self.history[rows], self.completion[rows], self.features[rows]
        )

    def __len__(self) -> int:
        return len(self.user_id)


def listening_sequences(
    plays: pl.DataFrame,
    activity: pl.DataFrame,
    features: list[str],
    start: datetime,
    history_length: int,
    k: int,
) -> Sequences:
    """Build sequences from ``plays`` (user_id, ts, track_id) and ``user_activity`` snapshots."""
    plays = plays.select("user_id", "ts", "track_id").sort("user_id", "ts")
    user = plays["user_id"].to_numpy()
    track = plays["track_id"].to_numpy()
    day = day_index(plays["ts"], start)
    n = len(user)
    first_of_user = np.r_[True, user[1:] != user[:-1]]
    user_start = np.maximum.accumulate(np.where(first_of_user, np.arange(n), 0))
    starts = np.flatnonzero(
        np.r_[True, (user[1:] != user[:-1]) | (day[1:] != day[:-1])]
    )  # first play of each user-day

    H, look = history_length, 4 * k
    hist_idx = starts[:, None] - H + np.arange(H)[None, :]
    history = np.where(hist_idx >= user_start[starts][:, None], track[np.clip(hist_idx, 0, n - 1)], -1)
    ahead_idx = starts[:, None] + np.arange(look)[None, :]
    same_user = (ahead_idx < n) & (user[np.clip(ahead_idx, 0, n - 1)] == user[starts][:, None])
    ahead = np.where(same_user, track[np.clip(ahead_idx, 0, n - 1)], -1)
    completion, ok = _first_new(ahead, history, k)

    rows = starts[ok]
    keys = pl.DataFrame({"user_id": user[rows], "event_timestamp": snapshot_ts(start, day[rows] - 1)})
    feats = keys.join(
        activity.select("user_id", "event_timestamp", *features),
        on=["user_id", "event_timestamp"],
        how="left",
        maintain_order="left",
    )
    return Sequences(user[rows], day[rows], history[ok], completion, feats.select(features))


def _first_new(ahead: np.ndarray, history: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``k`` distinct ids of ``ahead`` absent from ``history``; rows with fewer
    are dropped."""
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


def load_sequences(
    sp: SFTParams, raw_dir: Path, features_dir: Path
) -> tuple[Sequences, np.ndarray, datetime]:
    """(every listening sequence in the logs, the catalogue's track ids, the log start)."""
    start, _ = window(raw_dir)
    plays = pl.from_arrow(contract.read(raw_dir, "plays", ["user_id", "ts", "track_id"]))
    activity = pl.read_parquet(Path(features_dir) / SOURCES_DIR / SOURCE_FILES["user_activity"])
    tracks = contract.read(raw_dir, "tracks", ["track_id"])["track_id"].to_numpy()
    return (
        listening_sequences(plays, activity, sp.prompt_features, start, sp.history_length, sp.slate_size),
        tracks,
        start,
    )


def split(seqs: Sequences, sp: SFTParams) -> tuple[Sequences, Sequences, int]:
    """Train: other listeners, earlier days. Test: held-out listeners, later days (also what
    evaluation ranks on, so no policy is scored on sequences it imitated)."""
    held_out = split_users(seqs.user_id, sp.test_user_fraction, sp.seed)
    split_day = int(np.quantile(seqs.day, 0.7))
    train_rows = np.flatnonzero(~held_out & (seqs.day < split_day))
    test_rows = np.flatnonzero(held_out & (seqs.day >= split_day))
    rng = np.random.default_rng(sp.seed)
    if len(train_rows) > sp.max_train_sequences:
        train_rows = np.sort(rng.choice(train_rows, sp.max_train_sequences, replace=False))
    return seqs.take(train_rows), seqs.take(test_rows), split_day
