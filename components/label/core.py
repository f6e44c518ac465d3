"""Stage ``label``: every short-term signal and mid-term label per recommended impression.

Reads the raw logs, computes the labels (:mod:`components.reward.labels`), fits the
surrogate index on older cohorts and applies it, and writes ``labels.parquet`` (+ the fitted
surrogate, so other logs — the experiment library, a simulated A/B arm — are labelled the
same way). The composite reward is applied downstream with the weights the signals stage
learns (:mod:`components.reward.composite`).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import polars as pl

from components.io import atomic_dir
from components.logs import window
from components.params import Params
from components.reward.candidates import CANDIDATES
from components.reward.labels import (
    LABELS_FILE,
    SURROGATE_FILE,
    label_logs,
    read_logs,
    with_surrogate,
)
from components.reward.surrogate import fit_surrogate


def run(params: Params, raw_dir: Path, out_dir: Path) -> dict[str, float]:
    """Label every impression in ``raw_dir``; write ``out_dir/labels.parquet``; return metrics."""
    lp = params.label
    window_start, n_days = window(raw_dir)
    # lazy scans: read in parallel, only the columns used, and freed once the labels are made
    frame = label_logs(*read_logs(raw_dir), window_start, n_days, lp)
    surrogate, surrogate_metrics = fit_surrogate(frame, lp, n_days)
    frame = with_surrogate(frame, surrogate)
    with atomic_dir(out_dir) as tmp:
        frame.write_parquet(tmp / LABELS_FILE, compression="zstd")
        joblib.dump(surrogate, tmp / SURROGATE_FILE)
    return label_metrics(frame) | surrogate_metrics


def label_metrics(frame: pl.DataFrame) -> dict[str, float]:
    """Mean of every candidate signal (over its uncensored rows) and its censored count."""
    n = frame.height
    out: dict[str, float] = {"label/impressions": n}
    for name in (
        "retained_28d",
        "active_days_28d",
        "surrogate_active_days_28d",
        *(c.column for c in CANDIDATES),
    ):
        col = frame[name]
        observed = n - col.null_count()
        out[f"label/{name}_mean"] = float(col.cast(pl.Float64).mean()) if observed else float("nan")
        out[f"label/censored/{name}"] = int(col.null_count())
    return out
