"""Mid-term reward signals per recommended impression — vectorised, no loop over events.

Time is counted in whole UTC days from the start of the log window: an impression on day
``d`` looks at days ``d+1 .. d+h`` ("(t, t+h]" at day granularity; the impression's own
day is excluded so nothing from the session itself leaks into a mid-term label). A label
whose horizon runs past the last logged day is *censored* (reported by a mask; the stage
stores null, never a guessed zero).

How it stays fast (labelling is the widest job in the pipeline): every signal is a
difference of two gathers from a small cumulative grid —
- (user x day): was the user active, how many plays;
- (pair x day) for the (user, artist) pairs that were played: was the pair played that day.
No sort, no hash table per event: ids are compacted with a lookup table when the id space
is small (the simulator's, and most warehouses' surrogate keys) and with a polars hash
join otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from components.logs import LOOKUP_TABLE_MAX, dense_ids


@dataclass(frozen=True)
class Horizons:
    active: int = 7  # active_days_7d
    artist_return: int = 14  # artist_return_14d
    artist_return_min_days: int = 2
    retention: int = 28  # retained_28d / active_days_28d
    retention_window: int = 7  # retained = active in (t+28-7, t+28]


def _cumulate(daily: np.ndarray) -> np.ndarray:
    """(rows, days) counts -> (rows, days + 1) cumulative grid with a leading zero column."""
    grid = np.zeros((daily.shape[0], daily.shape[1] + 1), dtype=np.int32)
    np.cumsum(daily, axis=1, out=grid[:, 1:], dtype=np.int32)
    return grid


def _window_count(grid: np.ndarray, row: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Total over days first..last (inclusive, clipped to the log) for each row."""
    width = grid.shape[1]
    flat = grid.ravel()
    base = row * width
    return flat[base + np.clip(last + 1, 0, width - 1)] - flat[base + np.clip(first, 0, width - 1)]


def _pair_rows(
    play_key: np.ndarray, imp_key: np.ndarray, key_space: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """Compact (user, artist) keys of plays to 0..P-1; impressions of unplayed pairs get -1."""
    if key_space <= LOOKUP_TABLE_MAX:
        seen = np.zeros(key_space, dtype=bool)
        seen[play_key] = True
        pairs = np.flatnonzero(seen)
        lookup = np.full(key_space, -1, dtype=np.int64)
        lookup[pairs] = np.arange(len(pairs))
        return len(pairs), lookup[play_key], lookup[imp_key]
    pairs = pl.Series("key", play_key).unique()
    table = pl.DataFrame({"key": pairs, "row": np.arange(len(pairs), dtype=np.int64)})

    def rows(keys: np.ndarray) -> np.ndarray:
        joined = pl.DataFrame({"key": keys}).join(table, on="key", how="left", maintain_order="left")
        return joined["row"].fill_null(-1).to_numpy()

    return len(pairs), rows(play_key), rows(imp_key)


def mid_term_signals(
    imp_user: np.ndarray,
    imp_artist: np.ndarray,
    imp_day: np.ndarray,
    play_user: np.ndarray,
    play_artist: np.ndarray,
    play_day: np.ndarray,
    n_days: int,
    h: Horizons,
    play_self: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per impression: mid-term outcomes, surrogate inputs and censoring masks.

    ``*_day`` are day indexes in [0, n_days). Activity = any impression or play that day.
    ``play_self`` marks plays the listener chose (organic or search): with it, also
    ``self_plays_7d`` (such plays per day in the next week). Returns plain arrays (counts as
    int32, outcomes as bool, ``censored_*`` masks).
    """
    iu, pu = dense_ids(imp_user, play_user)
    n_users = int(max(iu.max(initial=-1), pu.max(initial=-1))) + 1

    active = np.zeros((n_users, n_days), dtype=bool)
    active[iu, imp_day] = True
    active[pu, play_day] = True
    active = _cumulate(active)
    plays = _cumulate(
        np.bincount(pu * n_days + play_day, minlength=n_users * n_days).reshape(n_users, n_days)
    )

    d = imp_day
    out: dict[str, np.ndarray] = {
        "active_days_prev_7d": _window_count(active, iu, d - h.active + 1, d),
        "active_days_7d": _window_count(active, iu, d + 1, d + h.active),
        "plays_7d": _window_count(plays, iu, d + 1, d + h.active),
        "active_days_28d": _window_count(active, iu, d + 1, d + h.retention),
        "retained_28d": _window_count(active, iu, d + h.retention - h.retention_window + 1, d + h.retention)
        > 0,
        # still coming back at the end of the first week (the last 3 of its 7 days)
        "retained_7d": _window_count(active, iu, d + h.active - 2, d + h.active) > 0,
    }
    if play_self is not None:
        chosen = np.bincount(pu * n_days + play_day, weights=play_self, minlength=n_users * n_days)
        grid = _cumulate(chosen.reshape(n_users, n_days).astype(np.int32))
        out["self_plays_7d"] = _window_count(grid, iu, d + 1, d + h.active) / h.active

    ia, pa = dense_ids(imp_artist, play_artist)
    n_artists = int(max(ia.max(initial=-1), pa.max(initial=-1))) + 1
    n_pairs, play_row, imp_row = _pair_rows(pu * n_artists + pa, iu * n_artists + ia, n_users * n_artists)
    played = np.zeros((n_pairs, n_days), dtype=bool)
    played[play_row, play_day] = True  # distinct (pair, day): repeated plays collapse
    pair_days = _cumulate(played)
    known = imp_row >= 0
    row = np.where(known, imp_row, 0)

    def per_pair(first: np.ndarray, last: np.ndarray) -> np.ndarray:
        if n_pairs == 0:
            return np.zeros(len(d), np.int32)
        return np.where(known, _window_count(pair_days, row, first, last), 0)

    out["artist_days_14d"] = per_pair(d + 1, d + h.artist_return)
    out["artist_return_14d"] = out["artist_days_14d"] >= h.artist_return_min_days
    out["artist_days_7d"] = per_pair(d + 1, d + h.active)

    last_day = n_days - 1
    out["censored_7d"] = d + h.active > last_day
    out["censored_14d"] = d + h.artist_return > last_day
    out["censored_28d"] = d + h.retention > last_day
    return out
