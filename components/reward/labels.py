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
- ``*_credit``: session-level outcomes shared among the session's impressions by
  ``label.attribution``;
- ``reward``: the composite with ``label.composite`` weights (null when an input is censored);
- ``day``: whole days since the log start (for time-based splits downstream).
"""

from __future__ import annotations

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
    "artist_id",
    "streamed",
    "skipped",
    "saved",
]
PLAY_COLUMNS = ["user_id", "ts", "artist_id"]


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
    """Immediate + mid-term labels, censoring and attribution (no surrogate, no composite)."""
    imp_day = day_index(imp["ts"], window_start)
    sig = mid_term_signals(
        imp["user_id"].to_numpy(),
        imp["artist_id"].to_numpy(),
        imp_day,
        plays["user_id"].to_numpy(),
        plays["artist_id"].to_numpy(),
        day_index(plays["ts"], window_start),
        n_days,
        horizons(lp),
    )
    c7, c14, c28 = (sig.pop(k) for k in ("censored_7d", "censored_14d", "censored_28d"))
    censor = {
        "active_days_7d": c7,
        "plays_7d": c7,
        "artist_days_7d": c7,
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
    return frame.with_columns(
        active_days_7d_credit=pl.col("active_days_7d") * share,
        retained_28d_credit=pl.col("retained_28d").cast(pl.Float64) * share,
        credit_share=share,
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


def composite_reward(frame: pl.DataFrame, lp: LabelParams) -> pl.DataFrame:
    """``reward`` = weighted sum of labels (day counts divided by their horizon); null if censored."""
    w, share = lp.composite, pl.col("credit_share")
    terms = [
        w.streamed * pl.col("streamed").cast(pl.Float64),
        w.saved * pl.col("saved").cast(pl.Float64),
        w.skipped * pl.col("skipped").cast(pl.Float64),
        w.active_days_7d * pl.col("active_days_7d_credit") / lp.active_horizon_days,
        w.artist_return_14d * pl.col("artist_return_14d").cast(pl.Float64),
        w.surrogate_active_days_28d * pl.col("surrogate_active_days_28d") * share / lp.retention_horizon_days,
    ]
    return frame.with_columns(reward=_strict_sum(terms))


def _strict_sum(terms: list[pl.Expr]) -> pl.Expr:
    """Sum that is null when any term is null (``sum_horizontal`` would skip nulls)."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def label_with(
    imp: pl.DataFrame, plays: pl.DataFrame, window_start, n_days: int, lp: LabelParams, labels_dir: Path
) -> pl.DataFrame:
    """Label other logs (e.g. a simulated A/B arm's) exactly as the label stage did, reusing its
    fitted surrogate index: the composite ``reward`` then means the same thing in both."""
    frame = compute_labels(imp, plays, window_start, n_days, lp)
    surrogate = joblib.load(Path(labels_dir) / SURROGATE_FILE)
    return composite_reward(frame.with_columns(apply_surrogate(frame, surrogate)), lp)
