"""The composite reward: a weighted sum of candidate signals, per impression.

Its weights come from the signals stage (``weights.json``): learned on the experiment library
so that a policy's per-slot composite predicts its effect on 28-day active days, or the
hand-set weights of ``label.composite.fixed``. Whoever needs the reward — the reward model's
training, evaluation's logged and true values — applies the same weights with :func:`with_reward`.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from components.errors import EncoreError
from components.params import CompositeWeights, LabelParams

WEIGHTS_FILE = "weights.json"


def fixed_weights(w: CompositeWeights, lp: LabelParams) -> dict[str, float]:
    """``label.composite.fixed`` as column weights (day counts divided by their horizon)."""
    return {
        "streamed": w.streamed,
        "saved": w.saved,
        "skipped": w.skipped,
        "active_days_7d_credit": w.active_days_7d / lp.active_horizon_days,
        "artist_return_14d": w.artist_return_14d,
        "surrogate_active_days_28d_credit": w.surrogate_active_days_28d / lp.retention_horizon_days,
    }


def composite_lag(weights: dict[str, float], lp: LabelParams) -> int:
    """Days after an impression before its composite is known: the longest label horizon among
    the weighted columns. A log's last ``lag`` days hold no composite (censored), so whoever
    serves a policy to learn from its days (the loop) must let them mature this long."""
    from components.reward.candidates import BY_COLUMN
    from components.reward.labels import horizons

    unknown = sorted(c for c, w in weights.items() if w != 0.0 and c not in BY_COLUMN)
    if unknown:
        raise EncoreError(
            f"composite weights name column(s) {unknown} that are no candidate signal's "
            f"(known: {sorted(BY_COLUMN)}); the signals stage's weights.json is from other code"
        )
    h = horizons(lp)
    return max((BY_COLUMN[c].lag(h) for c, w in weights.items() if w != 0.0), default=0)


def composite(weights: dict[str, float]) -> pl.Expr:
    """Sum of weight x column; null when any weighted input is null (censored), never a guessed 0."""
    terms = [w * pl.col(c).cast(pl.Float64) for c, w in weights.items() if w != 0.0]
    if not terms:
        return pl.lit(0.0)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def with_reward(frame: pl.DataFrame, weights: dict[str, float], name: str = "reward") -> pl.DataFrame:
    return frame.with_columns(composite(weights).alias(name))


def active_weights(signals_dir: Path) -> dict[str, float]:
    """The column weights the pipeline uses (learned or fixed, as the signals stage decided)."""
    path = Path(signals_dir) / WEIGHTS_FILE
    if not path.exists():
        raise EncoreError(f"{path}: no composite weights; the signals stage must run first.")
    return {k: float(v) for k, v in json.loads(path.read_text())["active"]["columns"].items()}
