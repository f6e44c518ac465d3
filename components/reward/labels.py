"""Reward labels per recommended impression: what "reward" means, defined once.

The label stage applies these to the raw logs; evaluation applies the very same functions
(and the label stage's fitted surrogate index) to a simulated A/B arm's logs, so the
composite ``reward`` means the same thing in training and in the truth it is checked against.

Columns (one row per impression, keyed by ``event_id``):

- immediate: ``streamed``, ``skipped``, ``saved``;
- mid-term (null when censored): ``active_days_7d``, ``artist_return_14d``, ``retained_28d``,
  and ``active_days_28d`` (the long-horizon outcome the surrogate index predicts);
- ``surrogate_active_days_28d``: the surrogate index (fitted on older cohorts) applied to
  every impression whose 7-day signals are in;
- more short-term signals (:mod:`components.reward.candidates` lists them all): ``listen_fraction``,
  ``discovery``, ``discovery_habit_14d``, ``self_plays_7d``, ``retained_7d``,
  ``served_repeat_7d``, ``slate_artist_concentration``;
- ``*_credit``: session-level outcomes shared among the session's impressions by
  ``label.attribution``;
- ``day``: whole days since the log start (for time-based splits downstream).

The composite reward is not a label: its weights are learned from the experiment library by
the signals stage, and :mod:`components.reward.composite` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from components import contract
from components.errors import ContractError
from components.logs import dense_codes
from components.params import LabelParams
from components.reward.signals import Horizons, MidTermSignals, horizon_days
from components.reward.surrogate import apply_surrogate

LABELS_FILE = "labels.parquet"
SURROGATE_FILE = "surrogate.joblib"  # the fitted surrogate index, to label other logs the same way
IMPRESSION_COLUMNS = [
    "event_id",
    "user_id",
    "ts",
    "session_id",
    "position",
    "track_id",
    "artist_id",
    "streamed",
    "skipped",
    "saved",
    "ms_played",
]
PLAY_COLUMNS = ["user_id", "ts", "artist_id", "source"]
TRACK_COLUMNS = ["track_id", "duration_ms"]
# the impression columns the labels pass through, and all that :func:`compute_labels` reads
# of the impressions (it reads ``PLAY_COLUMNS`` of the plays)
LABEL_KEYS = ["event_id", "user_id", "session_id", "position", "streamed", "skipped", "saved"]
MID_TERM_COLUMNS = [*LABEL_KEYS, "artist_id", "ts"]
DAY = 86_400_000_000  # microseconds


@dataclass(frozen=True)
class History:
    """What the same listeners did before the labelled window, from ``start`` on: their
    impressions (``user_id, track_id, ts``) and plays (``PLAY_COLUMNS``). Labels that look back
    (repetition, discovery) read it; no label is computed for it."""

    start: datetime
    impressions: pl.DataFrame
    plays: pl.DataFrame


def horizons(lp: LabelParams) -> Horizons:
    return Horizons(
        active=lp.active_horizon_days,
        artist_return=lp.artist_return_horizon_days,
        artist_return_min_days=lp.artist_return_min_days,
        retention=lp.retention_horizon_days,
        retention_window=lp.retention_window_days,
    )


def read_logs(raw_dir: Path) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """Lazy scans of the raw logs' impressions, plays and tracks (``IMPRESSION_COLUMNS``,
    ``PLAY_COLUMNS``, ``TRACK_COLUMNS``), each checked against the contract first.

    Why lazy: the labels read only the columns they use (projection pushdown) with polars'
    multi-threaded parquet reader — reading was a third of the label stage's time."""
    scans = []
    for name, columns in (
        ("impressions", IMPRESSION_COLUMNS),
        ("plays", PLAY_COLUMNS),
        ("tracks", TRACK_COLUMNS),
    ):
        table = contract.TABLES[name]
        path = table.file(raw_dir)
        if not path.exists():
            raise ContractError(f"{path}: table '{name}' not found in {raw_dir}.")
        contract.check_schema(table, pq.read_schema(path), path)
        scans.append(pl.scan_parquet(path).select(columns))
    return scans[0], scans[1], scans[2]


def compute_labels(
    imp: pl.DataFrame | pl.LazyFrame,
    plays: pl.DataFrame | pl.LazyFrame,
    window_start,
    n_days: int,
    lp: LabelParams,
) -> pl.DataFrame:
    """Immediate + mid-term labels, censoring and attribution (no surrogate, no history signals).

    ``imp``/``plays`` may be lazy (:func:`read_logs`): only the columns used are read. With a
    ``source`` column in ``plays``, also ``self_plays_7d`` (plays the listener chose)."""
    frame, events = _mid_term_inputs(imp.lazy(), plays.lazy(), window_start)
    h = horizons(lp)
    signals = MidTermSignals(
        frame["user_id"].to_numpy(),
        frame["artist_id"].to_numpy(),
        frame["day"].to_numpy(),
        events["user_id"].to_numpy(),
        events["artist_id"].to_numpy(),
        events["day"].to_numpy(),
        n_days,
        h,
        events["chosen"].to_numpy() if "chosen" in events.columns else None,
    )
    del events
    frame = frame.drop("artist_id")
    # a session's share needs all of the session, which a block may cut: shares come first
    shares = None if lp.attribution == "equal" else frame.select(attribution_share(frame, lp)).to_series()
    blocks = [
        _label_block(
            frame[rows], signals(rows), None if shares is None else shares[rows], horizon_days(h), n_days
        )
        for rows in signals.blocks()
    ]
    return pl.concat(blocks, rechunk=False)


def _mid_term_inputs(
    imp: pl.LazyFrame, plays: pl.LazyFrame, window_start
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(impressions: ``LABEL_KEYS``, artist, day; plays: user, artist, day and — with a
    ``source`` — ``chosen`` by the listener), read in parallel."""
    day = _day_index(window_start, imp.collect_schema()["ts"])
    chosen = {"chosen": pl.col("source") != "rec"} if "source" in plays.collect_schema().names() else {}
    frame, events = pl.collect_all(
        [
            imp.select(*LABEL_KEYS, "artist_id", day=day),
            plays.select("user_id", "artist_id", day=day, **chosen),
        ]
    )
    return frame, events


def _label_block(
    part: pl.DataFrame,
    signals: dict[str, np.ndarray],
    shares: pl.Series | None,
    horizon: dict[str, int],
    n_days: int,
) -> pl.DataFrame:
    """One block of impressions (``part``) with its ``signals``, null where censored, and the
    session credits (``shares``: each impression's share; None for ``equal``, all 1.0)."""
    last_day = n_days - 1

    def column(name: str, values: np.ndarray) -> pl.Expr:
        """The signal, null where its horizon runs past the last logged day (censored)."""
        series = pl.Series(name, values)
        if name not in horizon:
            return pl.lit(series)
        return pl.when(pl.col("day") <= last_day - horizon[name]).then(series).alias(name)

    columns = {name: column(name, values) for name, values in signals.items()}
    # the credits from the same expressions, in the same pass (one pass over the block, not two)
    credit = {c: columns[c].cast(pl.Float64) for c in CREDITED if c in columns}
    if shares is None:  # ``equal``: every share is 1.0, and x * 1.0 == x: no pass to multiply
        credits = {f"{c}_credit": x for c, x in credit.items()} | {"credit_share": pl.lit(1.0)}
    else:
        share = pl.lit(shares)
        credits = {f"{c}_credit": x * share for c, x in credit.items()} | {"credit_share": share}
    return part.with_columns(**columns, **credits)


def _day_index(window_start, ts_dtype: pl.DataType) -> pl.Expr:
    """Whole UTC days since ``window_start`` (Int32), as :func:`components.logs.day_index` counts them."""
    start = pl.Series([window_start]).cast(ts_dtype)[0]
    return (pl.col("ts") - pl.lit(start, dtype=ts_dtype)).dt.total_days().cast(pl.Int32)


# user-level outcomes shared among a session's impressions (``<name>_credit``)
CREDITED = ("active_days_7d", "retained_28d", "retained_7d", "self_plays_7d", "surrogate_active_days_28d")


def history_signals(
    imp: pl.DataFrame,
    plays: pl.DataFrame,
    tracks: pl.DataFrame,
    window_start,
    lp: LabelParams,
    before: History | None = None,
) -> pl.DataFrame:
    """Signals known when (or just after) the slate is shown, one row per impression, in
    ``imp``'s order (``event_id`` + the signals):

    - ``listen_fraction``: share of the track played (0 when not played);
    - ``slate_artist_concentration``: share of the slate's other slots with this track's artist;
    - ``served_repeat_7d``: this listener was shown this track in the 7 days before;
    - ``discovery``: streamed, and the listener had never played the artist before.
    The last two need history: null for impressions in the first ``label.min_history_days``
    days of what is known — the log, or ``before`` (the same listeners' impressions and plays
    before ``window_start``, e.g. the logs that precede a simulated A/B test) and the log.

    Memory (the labels are the widest job in the pipeline): groups are keyed by one integer
    (codes of listener x track, listener x artist, slate x artist) — polars groups one integer
    column in a fraction of the memory it needs for two — and every lookup joins only its keys
    and keeps ``imp``'s order, so nothing wider than a column is copied per impression.
    """
    served = imp.select("user_id", "track_id", "ts")
    plays = plays.select("user_id", "artist_id", "ts")
    if before is not None:
        served = pl.concat([before.impressions.select(served.columns).cast(served.schema), served])
        plays = pl.concat([before.plays.select(plays.columns).cast(plays.schema), plays])
    duration = imp.select("track_id").join(
        tracks.select(TRACK_COLUMNS), on="track_id", how="left", maintain_order="left"
    )
    # each helper's temporaries are gone before the next one starts
    frame = imp.select("event_id", "ts", "streamed", "ms_played").with_columns(
        duration_ms=duration["duration_ms"],
        repeat=_served_repeat(served)[served.height - imp.height :],  # ``imp``'s own impressions
        first_play=_first_play(imp, plays),
        slate_artist_concentration=_slate_artist_concentration(imp),
    )
    start = pl.Series([window_start if before is None else before.start]).cast(imp.schema["ts"])[0]
    known = pl.col("ts") >= pl.lit(start) + pl.duration(days=lp.min_history_days)
    discovery = pl.col("streamed") & (pl.col("first_play").is_null() | (pl.col("first_play") >= pl.col("ts")))
    return frame.select(
        "event_id",
        listen_fraction=(pl.col("ms_played") / pl.col("duration_ms")).clip(0.0, 1.0).fill_null(0.0),
        slate_artist_concentration="slate_artist_concentration",
        served_repeat_7d=pl.when(known).then(pl.col("repeat")),
        discovery=pl.when(known).then(discovery),
    )


def _served_repeat(served: pl.DataFrame) -> pl.Series:
    """For each impression (``user_id, track_id, ts``): was the same track shown to the same
    listener in the 7 days before."""
    (user,), _ = dense_codes(served["user_id"].to_numpy())
    (track,), n_tracks = dense_codes(served["track_id"].to_numpy())
    prev = pl.col("ts").shift(1).over("key", order_by="ts")
    shown = pl.DataFrame({"key": user * n_tracks + track, "ts": served["ts"]})
    return shown.select(
        (pl.col("ts") - prev).dt.total_microseconds().is_between(1, 7 * DAY).fill_null(False)
    )[:, 0]


def _first_play(imp: pl.DataFrame, plays: pl.DataFrame) -> pl.Series:
    """For each impression: when its listener first played its artist (null: never)."""
    (user, play_user), _ = dense_codes(imp["user_id"].to_numpy(), plays["user_id"].to_numpy())
    (artist, play_artist), n_artists = dense_codes(imp["artist_id"].to_numpy(), plays["artist_id"].to_numpy())
    played = pl.DataFrame({"key": play_user * n_artists + play_artist, "ts": plays["ts"]})
    first = played.group_by("key").agg(first_play=pl.col("ts").min())
    shown = pl.DataFrame({"key": user * n_artists + artist})
    return shown.join(first, on="key", how="left", maintain_order="left")["first_play"]


def _slate_artist_concentration(imp: pl.DataFrame) -> pl.Series:
    """For each impression: the share of its slate's other slots from the same artist."""
    (session,), _ = dense_codes(imp["session_id"].to_numpy())
    (artist,), n_artists = dense_codes(imp["artist_id"].to_numpy())
    slots = pl.DataFrame({"slate": session, "slate_artist": session * n_artists + artist})
    k = pl.len().over("slate")
    return slots.select(((pl.len().over("slate_artist") - 1) / (k - 1).clip(1, None)).cast(pl.Float64))[:, 0]


def label_logs(
    imp: pl.DataFrame | pl.LazyFrame,
    plays: pl.DataFrame | pl.LazyFrame,
    tracks: pl.DataFrame | pl.LazyFrame,
    window_start,
    n_days: int,
    lp: LabelParams,
    surrogate=None,
    before: History | None = None,
) -> pl.DataFrame:
    """Every label of :mod:`components.reward.candidates` for the impressions in ``imp``
    (``IMPRESSION_COLUMNS``), from every play in ``plays`` (``PLAY_COLUMNS``); the surrogate
    index's columns too when a fitted one is given. ``before``: see :func:`history_signals`.
    Lazy inputs (:func:`read_logs`) are read once, in parallel."""
    lazy = [f for f in (imp, plays, tracks) if isinstance(f, pl.LazyFrame)]
    if lazy:
        read = iter(pl.collect_all(lazy))
        imp, plays, tracks = (next(read) if isinstance(f, pl.LazyFrame) else f for f in (imp, plays, tracks))
    # history first: its polars temporaries go back to the system before the mid-term
    # signals' numpy ones, which the process keeps (components/_malloc.py) — 2 GB less at peak
    # on 38M impressions than the other way round
    history = history_signals(imp, plays, tracks, window_start, lp, before)
    frame = compute_labels(imp, plays, window_start, n_days, lp)
    # both are one row per impression in ``imp``'s order: side by side, no join (no copy)
    frame = frame.hstack(history.drop("event_id").get_columns())
    frame = frame.with_columns(discovery_habit_14d=pl.col("discovery") & pl.col("artist_return_14d"))
    return frame if surrogate is None else with_surrogate(frame, surrogate)


def with_surrogate(frame: pl.DataFrame, surrogate) -> pl.DataFrame:
    """The surrogate index's prediction and its session credit."""
    frame = frame.with_columns(apply_surrogate(frame, surrogate))
    return frame.with_columns(
        surrogate_active_days_28d_credit=pl.col("surrogate_active_days_28d") * pl.col("credit_share")
    )


def attribution_share(frame: pl.DataFrame, lp: LabelParams) -> pl.Expr:
    """Each impression's share of its session's user-level outcome.

    - ``equal``: every impression gets the whole outcome (no item-level signal);
    - ``split``: 1 / impressions in the session (the outcome is divided, sums to one outcome);
    - ``streamed``: the whole outcome goes to streamed impressions, none to the rest;
    - ``position``: weight (1+position)^-decay, normalised within the session (examination).
    """
    if lp.attribution == "equal":
        return pl.lit(1.0)
    if lp.attribution == "split":
        return 1.0 / pl.len().over("session_id")
    if lp.attribution == "streamed":
        return pl.col("streamed").cast(pl.Float64)
    w = (1.0 + pl.col("position").cast(pl.Float64)).pow(-lp.position_decay)
    return w / w.sum().over("session_id")


def label_with(
    imp: pl.DataFrame,
    plays: pl.DataFrame,
    tracks: pl.DataFrame,
    window_start,
    n_days: int,
    lp: LabelParams,
    labels_dir: Path,
    before: History | None = None,
) -> pl.DataFrame:
    """Label other logs (e.g. a simulated A/B arm's) exactly as the label stage did, reusing its
    fitted surrogate index: every signal, and so the composite, means the same thing in both."""
    surrogate = joblib.load(Path(labels_dir) / SURROGATE_FILE)
    return label_logs(imp, plays, tracks, window_start, n_days, lp, surrogate, before)
