"""Batch feature sources computed from the raw logs, each row stamped with when it became known.

All aggregates are daily snapshots: the row for day ``d`` covers events on days <= d and
is stamped ``event_timestamp = window_start + (d + 1) days`` — the moment day ``d`` is
over. A point-in-time join (``feature.event_timestamp <= impression.ts``) therefore only
ever sees events from days strictly before the impression's day: no leakage by design
(and ``tests/data/test_feature_leakage.py`` proves it by truncating the log).

Views:
- ``user_activity`` (user; dense: every live user every day): rolling counts and rates;
- ``track_stats`` (track; dense): rolling engagement and popularity, age, static attributes;
- ``user_artist`` (user x artist; sparse: a row on each day the pair was played):
  cumulative plays, distinct days, last day played;
- ``user_history`` (user; sparse: a row on each day the user played): the last N tracks.

Aggregation runs on dense (entity x day) cumulative grids in numpy (``bincount`` then
``cumsum``; a rolling window is a difference of two columns); frames are polars. Grid rows
are *codes* of the ids (:func:`components.logs.dense_codes`), so a grid's size follows the
number of distinct users or tracks, never the magnitude of their ids (a warehouse's sparse keys
would otherwise need tens of GB for the genre grid alone).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from components.logs import DAY_US, Logs, day_index, dense_codes, snapshot_ts
from components.params import FeaturesParams

# what each source reads of the raw tables: the stage loads one source's columns at a time
SOURCE_COLUMNS: dict[str, dict[str, list[str]]] = {
    "user_activity": {
        "impressions": ["user_id", "ts", "streamed", "skipped", "saved"],
        "plays": ["user_id", "ts", "track_id", "source"],
        "users": ["user_id", "signup_ts"],
        "tracks": ["track_id", "genre_id"],
    },
    "track_stats": {
        "impressions": ["track_id", "ts", "streamed", "skipped", "saved"],
        "plays": ["track_id", "ts", "ms_played", "source"],
        "users": [],
        "tracks": ["track_id", "genre_id", "duration_ms", "release_ts"],
    },
    "user_artist": {"impressions": [], "plays": ["user_id", "artist_id", "ts"], "users": [], "tracks": []},
    "user_history": {"impressions": [], "plays": ["user_id", "ts", "track_id"], "users": [], "tracks": []},
}


def _grid(
    row: np.ndarray, day: np.ndarray, n_rows: int, n_days: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(n_rows, n_days + 1) cumulative totals: G[r, k] = total on days < k."""
    counts = np.bincount(row * n_days + day, weights=weights, minlength=n_rows * n_days).reshape(
        n_rows, n_days
    )
    grid = np.zeros((n_rows, n_days + 1), dtype=np.float64)
    np.cumsum(counts, axis=1, out=grid[:, 1:])
    return grid


def _rolling(grid: np.ndarray, window: int) -> np.ndarray:
    """(n_rows, n_days): totals over the ``window`` days ending on each day (inclusive)."""
    hi = np.arange(1, grid.shape[1])
    return grid[:, hi] - grid[:, np.maximum(hi - window, 0)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN (-> null) where nothing was observed: 'no data' is not 'rate 0'."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _frame(
    keys: dict[str, np.ndarray],
    start: datetime,
    days: np.ndarray,
    counts: dict[str, np.ndarray],
    rates: dict[str, np.ndarray],
) -> pl.DataFrame:
    """Keys + Int64 counts + Float64 rates (NaN -> null) + event_timestamp."""
    return pl.DataFrame(
        {
            **keys,
            **{k: v.astype(np.int64) for k, v in counts.items()},
            **{k: pl.Series(k, v.astype(np.float64)).fill_nan(None) for k, v in rates.items()},
        }
    ).with_columns(snapshot_ts(start, days))


def _genre_of(tracks: pl.DataFrame, track_ids: np.ndarray) -> np.ndarray:
    tid, gid = tracks["track_id"].to_numpy(), tracks["genre_id"].to_numpy()
    order = np.argsort(tid)
    return gid[order][np.searchsorted(tid[order], track_ids)]


def user_activity(logs: Logs, fp: FeaturesParams) -> pl.DataFrame:
    """Per live user per day: streams, active days, engagement with recommendations, genre entropy, tenure."""
    D, s, w = logs.n_days, fp.short_window_days, fp.long_window_days
    imp, plays, users = logs.impressions, logs.plays, logs.users
    (iu, pu, uu), U = dense_codes(
        imp["user_id"].to_numpy(), plays["user_id"].to_numpy(), users["user_id"].to_numpy()
    )
    idays, pdays = day_index(imp["ts"], logs.start), day_index(plays["ts"], logs.start)

    plays_g = _grid(pu, pdays, U, D)
    organic_g = _grid(pu, pdays, U, D, weights=(plays["source"] != "rec").to_numpy().astype(float))
    active_key = np.unique(np.concatenate([iu * D + idays, pu * D + pdays]))
    active_g = _grid(active_key // D, active_key % D, U, D)
    imp_g = _grid(iu, idays, U, D)
    long_imp, long_plays = _rolling(imp_g, w), _rolling(plays_g, w)

    def rate(flag: str) -> np.ndarray:
        return _ratio(
            _rolling(_grid(iu, idays, U, D, weights=imp[flag].to_numpy().astype(float)), w), long_imp
        )

    counts = {
        f"u_streams_{s}d": _rolling(plays_g, s),
        f"u_streams_{w}d": long_plays,
        f"u_active_days_{s}d": _rolling(active_g, s),
        f"u_active_days_{w}d": _rolling(active_g, w),
        f"u_rec_impressions_{w}d": long_imp,
    }
    rates = {
        f"u_rec_stream_rate_{w}d": rate("streamed"),
        f"u_skip_rate_{w}d": rate("skipped"),
        f"u_save_rate_{w}d": rate("saved"),
        f"u_organic_share_{w}d": _ratio(_rolling(organic_g, w), long_plays),
    }
    genre_ids = np.unique(logs.tracks["genre_id"].to_numpy())
    genre = np.searchsorted(genre_ids, _genre_of(logs.tracks, plays["track_id"].to_numpy()))
    entropy, mix = _genre_mix(pu, pdays, genre, len(genre_ids), U, D, w)
    rates[f"u_genre_entropy_{w}d"] = entropy
    start_us = int(logs.start.timestamp() * 1_000_000)
    signup_day = np.floor((users["signup_ts"].dt.epoch("us").to_numpy() - start_us) / DAY_US)
    tenure = np.full((U, D), -1.0)
    tenure[uu] = np.arange(D)[None, :] + 1 - signup_day[:, None]
    counts["u_tenure_days"] = tenure

    rows, days = np.nonzero(tenure > 0)  # a user has a snapshot from the day after signing up
    ids = np.zeros(U, np.int64)
    ids[uu] = users["user_id"].to_numpy()
    frame = _frame(
        {"user_id": ids[rows]},
        logs.start,
        days,
        {k: v[rows, days] for k, v in counts.items()},
        {k: v[rows, days] for k, v in rates.items()},
    )
    # share of the listener's streams per genre (genres in ascending id order), null if none
    mix_rows = mix[rows, days]
    has = ~np.isnan(mix_rows[:, 0])
    mix_col = pl.Series(f"u_genre_mix_{w}d", np.where(has[:, None], mix_rows, 0.0)).cast(pl.List(pl.Float64))
    return frame.with_columns(
        pl.when(pl.Series(has)).then(mix_col).otherwise(None).alias(f"u_genre_mix_{w}d")
    )


def _genre_mix(
    pu: np.ndarray, pdays: np.ndarray, g: np.ndarray, G: int, U: int, D: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """(U, D) Shannon entropy (nats) of the genres streamed over the last ``w`` days, and the
    (U, D, G) genre shares themselves; NaN where the listener streamed nothing."""
    counts = np.bincount((pu * D + pdays) * G + g, minlength=U * D * G).reshape(U, D, G)
    cum = np.zeros((U, D + 1, G), dtype=np.float32)
    np.cumsum(counts, axis=1, out=cum[:, 1:, :])
    hi = np.arange(1, D + 1)
    win = cum[:, hi, :] - cum[:, np.maximum(hi - w, 0), :]
    total = win.sum(axis=2)
    p = win / np.maximum(total, 1)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=2)
    empty = total <= 0
    return np.where(empty, np.nan, ent), np.where(empty[..., None], np.nan, p)


def track_stats(logs: Logs, fp: FeaturesParams) -> pl.DataFrame:
    """Per track per day: rolling impressions, stream/skip/save rates, plays (popularity), age."""
    D, w = logs.n_days, fp.long_window_days
    imp, plays, tracks = logs.impressions, logs.plays, logs.tracks
    (it, pt, tt), T = dense_codes(
        imp["track_id"].to_numpy(), plays["track_id"].to_numpy(), tracks["track_id"].to_numpy()
    )
    idays, pdays = day_index(imp["ts"], logs.start), day_index(plays["ts"], logs.start)
    imp_w = _rolling(_grid(it, idays, T, D), w)

    def rate(flag: str) -> np.ndarray:
        return _ratio(_rolling(_grid(it, idays, T, D, weights=imp[flag].to_numpy().astype(float)), w), imp_w)

    start_us = int(logs.start.timestamp() * 1_000_000)
    release_day = np.floor((tracks["release_ts"].dt.epoch("us").to_numpy() - start_us) / DAY_US)
    rows = np.repeat(tt, D)
    days = np.tile(np.arange(D), len(tt))
    age = days + 1 - np.repeat(release_day, D)
    plays_w = _rolling(_grid(pt, pdays, T, D), w)
    # how much of the track people listen to, and how often they come back to it on their
    # own: engagement beyond the click, the track-level trace of lasting value
    duration = np.ones(T)
    duration[tt] = tracks["duration_ms"].to_numpy()
    completion = np.clip(plays["ms_played"].to_numpy() / np.maximum(duration[pt], 1.0), 0.0, 1.0)
    completion_w = _rolling(_grid(pt, pdays, T, D, weights=completion), w)
    organic_w = _rolling(
        _grid(pt, pdays, T, D, weights=(plays["source"] == "organic").to_numpy().astype(float)), w
    )
    counts = {
        f"t_impressions_{w}d": imp_w[rows, days],
        f"t_plays_{w}d": plays_w[rows, days],
        "t_age_days": age,
        "t_genre_id": np.repeat(tracks["genre_id"].to_numpy(), D),
        "t_duration_s": np.repeat(tracks["duration_ms"].to_numpy() // 1000, D),
    }
    rates = {
        f"t_stream_rate_{w}d": rate("streamed")[rows, days],
        f"t_skip_rate_{w}d": rate("skipped")[rows, days],
        f"t_save_rate_{w}d": rate("saved")[rows, days],
        f"t_log_plays_{w}d": np.log1p(plays_w[rows, days]),
        f"t_completion_{w}d": _ratio(completion_w, plays_w)[rows, days],
        f"t_organic_share_{w}d": _ratio(organic_w, plays_w)[rows, days],
    }
    keep = age > 0  # a track exists from the day after its release
    return _frame(
        {"track_id": np.repeat(tracks["track_id"].to_numpy(), D)[keep]},
        logs.start,
        days[keep],
        {k: v[keep] for k, v in counts.items()},
        {k: v[keep] for k, v in rates.items()},
    )


def user_artist(logs: Logs) -> pl.DataFrame:
    """Per (user, artist), a row on each day the pair was played: cumulative plays, distinct days,
    last day."""
    plays = logs.plays.select("user_id", "artist_id", day=pl.Series(day_index(logs.plays["ts"], logs.start)))
    daily = plays.group_by("user_id", "artist_id", "day").agg(n=pl.len()).sort("user_id", "artist_id", "day")
    daily = daily.with_columns(
        ua_plays=pl.col("n").cum_sum().over("user_id", "artist_id"),
        ua_days_played=pl.int_range(1, pl.len() + 1).over("user_id", "artist_id"),
        ua_last_play_epoch_day=(pl.col("day") + int(logs.start.timestamp() // 86_400)).cast(pl.Int64),
    )
    return daily.select(
        "user_id",
        "artist_id",
        pl.col("ua_plays").cast(pl.Int64),
        pl.col("ua_days_played").cast(pl.Int64),
        "ua_last_play_epoch_day",
    ).with_columns(snapshot_ts(logs.start, daily["day"].to_numpy()))


def user_history(logs: Logs, fp: FeaturesParams) -> pl.DataFrame:
    """Per user, a row on each day they played: their last ``history_length`` track ids (oldest first)."""
    H = fp.history_length
    plays = logs.plays.select("user_id", "ts", "track_id").sort("user_id", "ts")
    days = day_index(plays["ts"], logs.start)
    user = plays["user_id"].to_numpy()
    track = plays["track_id"].to_numpy()
    # the last play of each (user, day) closes that day's snapshot
    last = np.r_[(user[1:] != user[:-1]) | (days[1:] != days[:-1]), True]
    ends = np.flatnonzero(last) + 1
    first_of_user = np.r_[0, np.flatnonzero(user[1:] != user[:-1]) + 1]
    user_start = first_of_user[np.searchsorted(first_of_user, ends - 1, side="right") - 1]
    idx = ends[:, None] - H + np.arange(H)[None, :]
    valid = idx >= user_start[:, None]
    recent = np.where(valid, track[np.clip(idx, 0, None)], -1)
    history = (
        pl.Series("recent_tracks", recent)
        .cast(pl.List(pl.Int64))
        .list.eval(pl.element().filter(pl.element() >= 0))
    )
    return pl.DataFrame({"user_id": user[ends - 1], "recent_tracks": history}).with_columns(
        snapshot_ts(logs.start, days[ends - 1])
    )
