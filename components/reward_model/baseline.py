"""The tabular baseline the transformer must beat: gradient boosting on the same numeric features.

It sees the user and candidate features (not the token ids or the listening history), which
is what a strong production baseline would use. Same splits, same metrics.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from components.reward.examples import numeric_matrix


def fit_predict(
    train: pl.DataFrame, test: pl.DataFrame, columns: list[str], target: str, binary: bool, seed: int
) -> np.ndarray:
    """Predictions on ``test`` in label units (probabilities for a binary target)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_train, x_test = numeric_matrix(train, columns), numeric_matrix(test, columns)
    y = train[target].cast(pl.Float64).to_numpy()
    if binary:
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed).fit(
            x_train, y.astype(int)
        )
        return model.predict_proba(x_test)[:, 1]
    model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, random_state=seed).fit(x_train, y)
    return model.predict(x_test)
