"""Stage ``label``: mid-term reward labels per recommended impression.

Reads the raw logs, computes the labels (:mod:`components.reward.labels`), fits the
surrogate index on older cohorts, adds the composite reward and writes
``labels.parquet`` (+ the fitted surrogate, so other logs can be labelled the same way).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import polars as pl

from components import contract
from components.io import atomic_dir
from components.logs import window
from components.params import Params
from components.reward.labels import (
    IMPRESSION_COLUMNS,
    LABELS_FILE,
    PLAY_COLUMNS,
    SURROGATE_FILE,
    composite_reward,
    compute_labels,
)
from components.reward.surrogate import fit_surrogate


def run(params: Params, raw_dir: Path, out_dir: Path) -> dict[str, float]:
    """Label every impression in ``raw_dir``; write ``out_dir/labels.parquet``; return metrics."""
    lp = params.label
    window_start, n_days = window(raw_dir)
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
        out[f"label/{name}_rate"] = (
            float(col.cast(pl.Float64).mean()) if col.null_count() < n else float("nan")
        )
    for name in ("active_days_7d", "active_days_28d", "surrogate_active_days_28d", "reward"):
        out[f"label/{name}_mean"] = (
            float(frame[name].mean()) if frame[name].null_count() < n else float("nan")
        )
    for name in (
        "active_days_7d",
        "artist_return_14d",
        "retained_28d",
        "surrogate_active_days_28d",
        "reward",
    ):
        out[f"label/censored/{name}"] = int(frame[name].null_count())
    return out
