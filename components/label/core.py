"""Stage ``label``: mid-term reward labels per recommended impression.

Output ``labels.parquet`` (one row per impression, keyed by ``event_id``):

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

from components import contract
from components.io import atomic_dir
from components.label.signals import Horizons, day_index, mid_term_signals
from components.label.surrogate import apply_surrogate, fit_surrogate
from components.params import LabelParams, Params

LABELS_FILE = "labels.parquet"
SURROGATE_FILE = "surrogate.joblib"  # the fitted surrogate index, to label other logs the same way
IMPRESSION_COLUMNS = ["event_id", "user_id", "ts", "session_id", "position", "artist_id", "streamed", "skipped", "saved"]
PLAY_COLUMNS = ["user_id", "ts", "artist_id"]


def horizons(lp: LabelParams) -> Horizons:
    return Horizons(
        active=lp.active_horizon_days,
        artist_return=lp.artist_return_horizon_days,
        artist_return_min_days=lp.artist_return_min_days,
        retention=lp.retention_horizon_days,
        retention_window=lp.retention_window_days,
    )


def compute_labels(imp: pl.DataFrame, plays: pl.DataFrame, window_start, n_days: int, lp: LabelParams) -> pl.DataFrame:
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
        "active_days_7d": c7, "plays_7d": c7, "artist_days_7d": c7,
        "artist_days_14d": c14, "artist_return_14d": c14,
        "active_days_28d": c28, "retained_28d": c28,
    }
    columns = {name: _nullable(values, censor.get(name)) for name, values in sig.items()}
    frame = imp.select("event_id", "user_id", "session_id", "position", "streamed", "skipped", "saved").with_columns(
        day=pl.Series(imp_day), **columns
    )
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


def run(params: Params, raw_dir: Path, out_dir: Path) -> dict[str, float]:
    """Label every impression in ``raw_dir``; write ``out_dir/labels.parquet``; return metrics."""
    lp = params.label
    manifest = contract.read_manifest(raw_dir)
    window_start = pl.Series([manifest["window_start"]]).str.to_datetime(time_zone="UTC")[0]
    n_days = int(manifest["days"])
    imp = pl.from_arrow(contract.read(raw_dir, "impressions", IMPRESSION_COLUMNS))
    plays = pl.from_arrow(contract.read(raw_dir, "plays", PLAY_COLUMNS))
    frame = compute_labels(imp, plays, window_start, n_days, lp)
    frame, surrogate_metrics, surrogate = fit_surrogate(frame, lp, n_days)
    frame = composite_reward(frame, lp)
    with atomic_dir(out_dir) as tmp:
        frame.write_parquet(tmp / LABELS_FILE, compression="zstd")
        joblib.dump(surrogate, tmp / SURROGATE_FILE)
    return label_metrics(frame) | surrogate_metrics


def label_metrics(frame: pl.DataFrame) -> dict[str, float]:
    """Label rates (over uncensored rows) and censored counts, for metrics/label.json."""
    n = frame.height
    out: dict[str, float] = {"label/impressions": n}
    for name in ("streamed", "skipped", "saved", "artist_return_14d", "retained_28d"):
        col = frame[name]
        out[f"label/{name}_rate"] = float(col.cast(pl.Float64).mean()) if col.null_count() < n else float("nan")
    for name in ("active_days_7d", "active_days_28d", "surrogate_active_days_28d", "reward"):
        out[f"label/{name}_mean"] = float(frame[name].mean()) if frame[name].null_count() < n else float("nan")
    for name in ("active_days_7d", "artist_return_14d", "retained_28d", "surrogate_active_days_28d", "reward"):
        out[f"label/censored/{name}"] = int(frame[name].null_count())
    return out


def label_with(imp: pl.DataFrame, plays: pl.DataFrame, window_start, n_days: int, lp: LabelParams, labels_dir: Path) -> pl.DataFrame:
    """Label other logs (e.g. a simulated A/B arm's) exactly as the label stage did, reusing its
    fitted surrogate index: the composite ``reward`` then means the same thing in both."""
    frame = compute_labels(imp, plays, window_start, n_days, lp)
    surrogate = joblib.load(Path(labels_dir) / SURROGATE_FILE)
    return composite_reward(frame.with_columns(apply_surrogate(frame, surrogate)), lp)
