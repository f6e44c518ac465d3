"""Mid-term reward signals per recommended impression — vectorised, no loop over events.

Time is counted in whole UTC days from the start of the log window: an impression on day
``d`` looks at days ``d+1 .. d+h`` ("(t, t+h]" at day granularity; the impression's own
day is excluded so nothing from the session itself leaks into a mid-term label). A label
whose horizon runs past the last logged day is *censored* (:func:`horizon_days` says which
look how far ahead; the stage stores null, never a guessed zero).

How it stays fast (labelling is the widest job in the pipeline): a user-level signal is a
difference of two columns of a small cumulative (user x day) grid (was the user active, how
many plays), computed once per (user, day) cell, read once per run of impressions in the same
cell (a slate) and repeated; a (user, artist) pair's played days are a bitset (one word for
56 days), and its window counts are a shift, a mask and a popcount. No sort, no hash table per
event; the user and the pair halves run side by side (numpy lets go of the GIL).

How it stays small: grids are indexed by *codes* (:func:`components.logs.dense_codes`), not by ids, so their
size is the number of distinct listeners x days whatever the ids look like — a warehouse's
surrogate keys can be sparse (max id 20M for 10k listeners), and sizing the grids by the
largest id would need tens of GB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from components.logs import dense_codes


@dataclass(frozen=True)
class Horizons:
    active: int = 7  # active_days_7d
    artist_return: int = 14  # artist_return_14d
    artist_return_min_days: int = 2
    retention: int = 28  # retained_28d / active_days_28d
    retention_window: int = 7  # retained = active in (t+28-7, t+28]


def horizon_days(h: Horizons) -> dict[str, int]:
    """How many days after its impression's day each signal looks: it is censored (unknown) for
    impressions on day ``d`` when ``d + horizon`` runs past the last logged day. Signals not
    listed look back only and are never censored."""
    return {
        "active_days_7d": h.active,
        "plays_7d": h.active,
        "artist_days_7d": h.active,
        "retained_7d": h.active,
        "self_plays_7d": h.active,
        "artist_days_14d": h.artist_return,
        "artist_return_14d": h.artist_return,
        "active_days_28d": h.retention,
        "retained_28d": h.retention,
    }


def _cumulate(daily: np.ndarray) -> np.ndarray:
    """(rows, days) counts -> (rows, days + 1) cumulative grid with a leading zero column."""
    grid = np.zeros((daily.shape[0], daily.shape[1] + 1), dtype=np.int32)
    np.cumsum(daily, axis=1, out=grid[:, 1:], dtype=np.int32)
    return grid


def _window_table(grid: np.ndarray, first: int, last: int) -> np.ndarray:
    """(rows, days) totals over days ``d+first .. d+last`` (inclusive, clipped to the log) for
    every row and day ``d``, flattened row-major: the value for row r, day d is at ``r*days + d``."""
    width = grid.shape[1]
    d = np.arange(width - 1)
    hi = np.clip(d + last + 1, 0, width - 1)
    lo = np.clip(d + first, 0, width - 1)
    return (grid[:, hi] - grid[:, lo]).ravel()


def _day_bits(played: np.ndarray) -> np.ndarray:
    """(rows, days) bool -> (rows, days // 64 + 2) uint64 bitsets, bit j of word w = day 64*w + j
    (zero words to the end: a 64-day window starting on any day up to ``days`` reads two words
    of its own row).

    Why bits: a pair's 56 days fit one 8-byte word, so the table of every played (listener,
    artist) pair stays in cache for the one random read per impression — a cumulative grid
    (a byte a day) was 3.5x larger and took three reads."""
    words = played.shape[1] // 64 + 2
    packed = np.zeros((played.shape[0], 8 * words), dtype=np.uint8)
    bytes_used = -(-played.shape[1] // 8)
    packed[:, :bytes_used] = np.packbits(played, axis=1, bitorder="little")
    return packed.view("<u8")


def _days_from(bits: np.ndarray, row: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per event: the 64 days from ``first`` on of its ``row`` of ``bits`` (:func:`_day_bits`),
    as one uint64 whose bit i is day ``first + i`` (0 past the log)."""
    words = bits.shape[1]
    if words == 2:  # a log shorter than 64 days: every day, and every ``first``, in the first word
        return bits[:, 0][row] >> first.astype(np.uint64)
    at = row.astype(np.int64) * words + (first >> 6)
    shift = (first & 63).astype(np.uint64)
    flat = bits.ravel()
    # the next word's low bits fill the top; written as (x << 1) << (63 - shift) because
    # a shift by 64 (when ``shift`` is 0) is undefined
    return (flat[at] >> shift) | ((flat[at + 1] << np.uint64(1)) << (np.uint64(63) - shift))


def _count_days(after: np.ndarray, horizon: int) -> np.ndarray:
    """Days set among the first ``horizon`` (<= 64) bits of each of ``after`` (int32)."""
    if not 0 < horizon <= 64:
        raise ValueError(f"a pair's horizon must be 1..64 days (got {horizon})")
    mask = np.uint64((1 << horizon) - 1)
    return np.bitwise_count(after & mask).astype(np.int32)


def _pair_lookup(
    play_key: np.ndarray, key_space: int, n_events: int
) -> tuple[int, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Compact the (user, artist) keys of plays to rows 0..P-1: (P, each play's row, a function
    giving any keys' rows — P for a pair never played).

    A lookup table over the key space is used only while it is no larger than the ``n_events``
    it serves (it is then the fastest way); otherwise the sorted distinct pairs, searched:
    memory follows the distinct pairs, not the key space."""
    if key_space <= max(n_events, 1 << 16):
        seen = np.zeros(key_space, dtype=bool)
        seen[play_key] = True
        rank_type = np.int32 if key_space < 2**31 else np.int64
        lookup = np.cumsum(seen, dtype=rank_type) - 1  # a played key's rank among the played keys
        n_pairs = int(lookup[-1]) + 1 if key_space else 0
        lookup[~seen] = n_pairs
        return n_pairs, lookup[play_key], lambda keys: lookup[keys]
    pairs = pl.Series(play_key).unique().sort().to_numpy()
    n_pairs = len(pairs)

    def rows(keys: np.ndarray) -> np.ndarray:
        if not n_pairs:
            return np.zeros(len(keys), dtype=np.int64)
        at = np.minimum(np.searchsorted(pairs, keys), n_pairs - 1)
        return np.where(pairs[at] == keys, at, n_pairs)

    return n_pairs, np.searchsorted(pairs, play_key), rows


class MidTermSignals:
    """Mid-term outcomes and surrogate inputs per impression, uncensored (:func:`horizon_days`).

    Built once from every impression's (user, artist, day) and every play: the grids and the
    pair table. Calling it on a slice of the impressions gives their signals, so a caller can
    go through millions of impressions a block at a time and hold only one block's temporaries.

    ``*_day`` are day indexes in [0, n_days) (anything else is an error). Activity = any
    impression or play that day. ``play_self`` marks plays the listener chose (organic or
    search): with it, also ``self_plays_7d`` (such plays per day in the next week). Signals are
    plain arrays: counts as int32, outcomes as bool, ``self_plays_7d`` as float64.
    """

    def __init__(
        self,
        imp_user: np.ndarray,
        imp_artist: np.ndarray,
        imp_day: np.ndarray,
        play_user: np.ndarray,
        play_artist: np.ndarray,
        play_day: np.ndarray,
        n_days: int,
        h: Horizons,
        play_self: np.ndarray | None = None,
    ):
        for days in (imp_day, play_day):
            if len(days) and (int(days.min()) < 0 or int(days.max()) >= n_days):
                raise ValueError(f"day indexes must lie in [0, {n_days}): events outside the log window")
        self.n_days, self.h, self.day = n_days, h, imp_day
        (self.user, play_user), n_users = dense_codes(imp_user, play_user)
        (self.artist, play_artist), self.n_artists = dense_codes(imp_artist, play_artist)
        self.per_cell = self._user_tables(n_users, play_user, play_day, play_self)
        self.pair_row, self.pair_days = self._pair_table(n_users, play_user, play_artist, play_day)

    def _user_tables(
        self, n_users: int, play_user: np.ndarray, play_day: np.ndarray, play_self: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Each user-level signal for every (user, day) cell, flattened: an impression reads its cell."""
        D, h = self.n_days, self.h
        play_cell = play_user * D + play_day
        active = np.zeros(n_users * D, dtype=bool)
        active[play_cell] = True
        for rows in self.blocks():
            active[self.user[rows] * D + self.day[rows]] = True
        active = _cumulate(active.reshape(n_users, D))
        plays = _cumulate(np.bincount(play_cell, minlength=n_users * D).reshape(n_users, D))
        tables = {
            "active_days_prev_7d": _window_table(active, -h.active + 1, 0),
            "active_days_7d": _window_table(active, 1, h.active),
            "plays_7d": _window_table(plays, 1, h.active),
            "active_days_28d": _window_table(active, 1, h.retention),
            "retained_28d": _window_table(active, h.retention - h.retention_window + 1, h.retention) > 0,
            # still coming back at the end of the first week (the last 3 of its 7 days)
            "retained_7d": _window_table(active, h.active - 2, h.active) > 0,
        }
        if play_self is not None:
            chosen = np.bincount(play_cell, weights=play_self, minlength=n_users * D)
            grid = _cumulate(chosen.reshape(n_users, D).astype(np.int32))
            tables["self_plays_7d"] = _window_table(grid, 1, h.active) / h.active
        return tables

    def _pair_table(
        self, n_users: int, play_user: np.ndarray, play_artist: np.ndarray, play_day: np.ndarray
    ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
        """(the row of any (user, artist) key, each row's played days as bits — :func:`_day_bits`)."""
        n_pairs, play_row, pair_row = _pair_lookup(
            play_user * self.n_artists + play_artist, n_users * self.n_artists, len(play_day) + len(self.day)
        )
        # row P stays empty: the impressions of pairs never played read zeros from it
        played = np.zeros((n_pairs + 1, self.n_days), dtype=bool)
        played[play_row, play_day] = True  # distinct (pair, day): repeated plays collapse
        return pair_row, _day_bits(played)

    def blocks(self, size: int = 1 << 22) -> list[slice]:
        """The impressions as consecutive slices of ``size`` rows (the last one shorter; one
        empty slice when there are none)."""
        n = len(self.day)
        return [slice(start, min(start + size, n)) for start in range(0, max(n, 1), size)]

    def __call__(self, rows: slice) -> dict[str, np.ndarray]:
        """The signals of impressions ``rows``, in order (user-level and pair-level halves side
        by side on two cores)."""
        return self._per_user(rows) | self._per_pair(rows)

    def _per_user(self, rows: slice) -> dict[str, np.ndarray]:
        cell = self.user[rows] * self.n_days + self.day[rows]
        # the impressions of a slate share their (user, day) cell: read each run of equal cells
        # once and repeat it (a tenth of the random reads of one read per impression)
        starts = np.flatnonzero(np.diff(cell, prepend=-1))
        run_cell, run_length = cell[starts], np.diff(np.r_[starts, len(cell)])
        return {name: np.repeat(table[run_cell], run_length) for name, table in self.per_cell.items()}

    def _per_pair(self, rows: slice) -> dict[str, np.ndarray]:
        h = self.h
        pair = self.pair_row(self.user[rows] * self.n_artists + self.artist[rows])
        after = _days_from(self.pair_days, pair, self.day[rows] + 1)  # bit i: played on day d + 1 + i
        days_14d = _count_days(after, h.artist_return)
        return {
            "artist_days_14d": days_14d,
            "artist_return_14d": days_14d >= h.artist_return_min_days,
            "artist_days_7d": _count_days(after, h.active),
        }
