"""The surrogate index: predict the long-horizon outcome from signals available within a week.

Recent impressions cannot wait 28 days for their label. Following Athey et al.'s surrogate
index, a model fitted on *older* cohorts (whose 28-day outcome is observed) maps 7-day
signals to the 28-day outcome; its accuracy is reported on a *later* cohort it never saw,
so the metric is an honest forecast error, not a fit.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from components.errors import EncoreError
from components.params import LabelParams

INPUTS = [
    "active_days_prev_7d",  # pre-period activity (a covariate, known at t)
    "active_days_7d",
    "plays_7d",
    "artist_days_7d",
    "streamed",
    "saved",
    "skipped",
]
TARGET = "active_days_28d"


def fit_surrogate(frame: pl.DataFrame, lp: LabelParams, n_days: int) -> tuple[object, dict[str, float]]:
    """Fit on the oldest uncensored days; (the model, its accuracy on the later cohort)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score

    sp = lp.surrogate
    # only the columns used: a filter copies every column it keeps (the labels are wide)
    eligible = frame.select("event_id", "day", *INPUTS, TARGET).filter(pl.col(TARGET).is_not_null())
    days = eligible["day"].unique().sort()
    if len(days) < 2:
        raise EncoreError(
            f"label: the log covers {n_days} days; the surrogate index needs at least two days of "
            "impressions "
            f"with an observed {lp.retention_horizon_days}-day outcome (a log of >= "
            f"{lp.retention_horizon_days + 2} days)."
        )
    split_day = int(days[max(1, int(len(days) * sp.train_fraction))]) if len(days) > 2 else int(days[1])
    train = eligible.filter(pl.col("day") < split_day)
    test = eligible.filter(pl.col("day") >= split_day)
    if train.height > sp.max_train_rows:
        train = train.sort("event_id").sample(
            sp.max_train_rows, seed=sp.seed
        )  # a seeded sample of a fixed order

    model = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, random_state=sp.seed)
    model.fit(_matrix(train), train[TARGET].to_numpy())
    predicted = model.predict(_matrix(test))
    actual = test[TARGET].to_numpy().astype(float)
    # the naive surrogate: scale the 7-day count to 28 days (what one would do without a model)
    naive = test["active_days_7d"].to_numpy() * (lp.retention_horizon_days / lp.active_horizon_days)

    metrics = {
        "label/surrogate/r2_later_cohort": float(r2_score(actual, predicted)),
        "label/surrogate/r2_naive_scaling": float(r2_score(actual, naive)),
        "label/surrogate/mae_later_cohort": float(np.mean(np.abs(actual - predicted))),
        "label/surrogate/train_rows": train.height,
        "label/surrogate/test_rows": test.height,
        "label/surrogate/split_day": split_day,
    }
    return model, metrics


def apply_surrogate(frame: pl.DataFrame, model) -> pl.Series:
    """The fitted index's prediction for every row whose 7-day signals are in (null otherwise)."""
    has_inputs = frame["active_days_7d"].is_not_null().to_numpy()
    pred = np.full(frame.height, np.nan)
    if has_inputs.any():
        pred[has_inputs] = model.predict(_matrix(frame.select(INPUTS).filter(pl.Series(has_inputs))))
    return pl.Series("surrogate_active_days_28d", pred).fill_nan(None)


def _matrix(df: pl.DataFrame) -> np.ndarray:
    return df.select([pl.col(c).cast(pl.Float64) for c in INPUTS]).to_numpy()
