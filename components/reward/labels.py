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
import pyarrow as pa

from components.logs import day_index
from components.params import LabelParams
from components.reward.signals import Horizons, mid_term_signals
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


def compute_labels(
    imp: pl.DataFrame, plays: pl.DataFrame, window_start, n_days: int, lp: LabelParams
) -> pl.DataFrame:
    """Immediate + mid-term labels, censoring and attribution (no surrogate, no history signals).

    With a ``source`` column in ``plays``, also ``self_plays_7d`` (plays the listener chose)."""
    imp_day = day_index(imp["ts"], window_start)
    play_self = (plays["source"] != "rec").to_numpy() if "source" in plays.columns else None
    sig = mid_term_signals(
        imp["user_id"].to_numpy(),
        imp["artist_id"].to_numpy(),
        imp_day,
        plays["user_id"].to_numpy(),
        plays["artist_id"].to_numpy(),
        day_index(plays["ts"], window_start),
        n_days,
        horizons(lp),
        play_self,
    )
    c7, c14, c28 = (sig.pop(k) for k in ("censored_7d", "censored_14d", "censored_28d"))
    censor = {
        "active_days_7d": c7,
        "plays_7d": c7,
        "artist_days_7d": c7,
        "retained_7d": c7,
        "self_plays_7d": c7,
        "artist_days_14d": c14,
        "artist_return_14d": c14,
        "active_days_28d": c28,
        "retained_28d": c28,
    }
    columns = {name: _nullable(values, censor.get(name)) for name, values in sig.items()}
    frame = imp.select(
        "event_id", "user_id", "session_id", "position", "streamed", "skipped", "saved"
    ).with_columns(day=pl.Series(imp_day), **columns)
    share = attribution_share(frame, lp)
    credits = {f"{c}_credit": pl.col(c).cast(pl.Float64) * share for c in CREDITED if c in frame.columns}
    return frame.with_columns(**credits, credit_share=share)


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
    """Signals known when (or just after) the slate is shown, per impression (``event_id``).

    - ``listen_fraction``: share of the track played (0 when not played);
    - ``slate_artist_concentration``: share of the slate's other slots with this track's artist;
    - ``served_repeat_7d``: this listener was shown this track in the 7 days before;
    - ``discovery``: streamed, and the listener had never played the artist before.
    The last two need history: null for impressions in the first ``label.min_history_days``
    days of what is known — the log, or ``before`` (the same listeners' impressions and plays
    before ``window_start``, e.g. the logs that precede a simulated A/B test) and the log.
    """
    k = pl.len().over("session_id")
    frame = imp.join(tracks.select(TRACK_COLUMNS), on="track_id", how="left").with_columns(
        listen_fraction=(pl.col("ms_played") / pl.col("duration_ms")).clip(0.0, 1.0).fill_null(0.0),
        slate_artist_concentration=(
            (pl.len().over("session_id", "artist_id") - 1) / (k - 1).clip(1, None)
        ).cast(pl.Float64),
    )
    served = imp.select("event_id", "user_id", "track_id", "ts")
    if before is not None:
        earlier = before.impressions.with_columns(event_id=None).select(served.columns)
        served = pl.concat([earlier.cast(served.schema), served])
        cols = ["user_id", "artist_id", "ts"]
        plays = pl.concat([before.plays.select(cols).cast(plays.select(cols).schema), plays.select(cols)])
    prev = pl.col("ts").shift(1).over("user_id", "track_id", order_by="ts")
    repeat = served.select(
        "event_id",
        served_repeat_7d=(pl.col("ts") - prev)
        .dt.total_microseconds()
        .is_between(1, 7 * DAY)
        .fill_null(False),
    ).drop_nulls("event_id")
    frame = frame.join(repeat, on="event_id", how="left", maintain_order="left")
    first = plays.group_by("user_id", "artist_id").agg(first_play=pl.col("ts").min())
    frame = frame.join(first, on=["user_id", "artist_id"], how="left").with_columns(
        discovery=pl.col("streamed")
        & (pl.col("first_play").is_null() | (pl.col("first_play") >= pl.col("ts")))
    )
    start = pl.Series([window_start if before is None else before.start]).cast(imp.schema["ts"])[0]
    known = pl.col("ts") >= pl.lit(start) + pl.duration(days=lp.min_history_days)
    return frame.select(
        "event_id",
        "listen_fraction",
        "slate_artist_concentration",
        served_repeat_7d=pl.when(known).then(pl.col("served_repeat_7d")),
        discovery=pl.when(known).then(pl.col("discovery")),
    )


def label_logs(
    imp: pl.DataFrame,
    plays: pl.DataFrame,
    tracks: pl.DataFrame,
    window_start,
    n_days: int,
    lp: LabelParams,
    surrogate=None,
    before: History | None = None,
) -> pl.DataFrame:
    """Every label of :mod:`components.reward.candidates` for the impressions in ``imp``
    (``IMPRESSION_COLUMNS``), from every play in ``plays`` (``PLAY_COLUMNS``); the surrogate
    index's columns too when a fitted one is given. ``before``: see :func:`history_signals`."""
    frame = compute_labels(imp, plays, window_start, n_days, lp)
    frame = frame.join(
        history_signals(imp, plays, tracks, window_start, lp, before),
        on="event_id",
        how="left",
        maintain_order="left",
    )
    frame = frame.with_columns(discovery_habit_14d=pl.col("discovery") & pl.col("artist_return_14d"))
    return frame if surrogate is None else with_surrogate(frame, surrogate)


def with_surrogate(frame: pl.DataFrame, surrogate) -> pl.DataFrame:
    """The surrogate index's prediction and its session credit."""
    frame = frame.with_columns(apply_surrogate(frame, surrogate))
    return frame.with_columns(
        surrogate_active_days_28d_credit=pl.col("surrogate_active_days_28d") * pl.col("credit_share")
    )


def _nullable(values: np.ndarray, censored: np.ndarray | None) -> pl.Series:
    """A column with nulls where ``censored`` (built through Arrow's validity mask: no copy per row)."""
    return pl.from_arrow(pa.array(values, mask=censored)) if censored is not None else pl.Series(values)


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
