"""Held-out metrics for a reward model (and the tabular baseline): one function, same numbers."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score


def ece(y: np.ndarray, pred: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over quantile bins of the prediction (label units)."""
    edges = np.unique(np.quantile(pred, np.linspace(0, 1, n_bins + 1)))
    idx = (
        np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, len(edges) - 2)
        if len(edges) > 1
        else np.zeros(len(pred), int)
    )
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        total += m.mean() * abs(y[m].mean() - pred[m].mean())
    return float(total)


def pairwise_accuracy(frame: pl.DataFrame, y: np.ndarray, score: np.ndarray) -> float:
    """Share of same-slate pairs with different outcomes that the scores order correctly."""
    df = frame.select("session_id").with_columns(y=pl.Series(y), s=pl.Series(score)).with_row_index("i")
    pairs = df.join(df, on="session_id", suffix="_b").filter(pl.col("y") > pl.col("y_b"))
    if pairs.height == 0:
        return float("nan")
    correct = (pairs["s"] > pairs["s_b"]).cast(pl.Float64) + 0.5 * (pairs["s"] == pairs["s_b"]).cast(
        pl.Float64
    )
    return float(correct.mean())


def slate_ndcg(frame: pl.DataFrame, gain: np.ndarray, score: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of each held-out slate re-ranked by score (gains >= 0; slates with no gain skipped)."""
    df = frame.select("session_id").with_columns(g=pl.Series(np.maximum(gain, 0.0)), s=pl.Series(score))
    ranked = df.with_columns(
        r_model=pl.col("s").rank("ordinal", descending=True).over("session_id") - 1,
        r_ideal=pl.col("g").rank("ordinal", descending=True).over("session_id") - 1,
    )
    per = (
        ranked.group_by("session_id")
        .agg(
            dcg=(
                pl.col("g")
                * pl.when(pl.col("r_model") < k).then(1.0 / (pl.col("r_model") + 2).log(2)).otherwise(0.0)
            ).sum(),
            idcg=(
                pl.col("g")
                * pl.when(pl.col("r_ideal") < k).then(1.0 / (pl.col("r_ideal") + 2).log(2)).otherwise(0.0)
            ).sum(),
        )
        .filter(pl.col("idcg") > 0)
        .sort("session_id")  # group_by order varies between runs, and float sums depend on order
    )
    return float((per["dcg"] / per["idcg"]).mean()) if per.height else float("nan")


def _auc(label: pl.Series, score: np.ndarray) -> float:
    """AUC over the rows where the binary label is observed (censored rows are null)."""
    known = label.is_not_null().to_numpy()
    y = label.to_numpy()[known].astype(int)
    return float(roc_auc_score(y, score[known])) if 0 < y.sum() < len(y) else float("nan")


def evaluate(
    frame: pl.DataFrame, score: np.ndarray, target: str, calibrated: bool, prefix: str
) -> dict[str, float]:
    """AUC (vs streamed and vs artist_return_14d), RMSE and ECE (if scores are in label units),
    pairwise accuracy and slate NDCG@10 on the target."""
    y = frame[target].cast(pl.Float64).to_numpy()
    out = {
        f"{prefix}/auc_streamed": _auc(frame["streamed"], score),
        f"{prefix}/auc_artist_return_14d": _auc(frame["artist_return_14d"], score),
        f"{prefix}/pairwise_accuracy": pairwise_accuracy(frame, y, score),
        f"{prefix}/ndcg_at_10": slate_ndcg(frame, y, score, 10),
    }
    if calibrated:
        out[f"{prefix}/rmse"] = float(np.sqrt(np.mean((y - score) ** 2)))
        out[f"{prefix}/ece"] = ece(y, score)
    return out
