"""Is a short-term signal worth optimising? Policy-level validity measured on past experiments.

A signal is valid at the policy level when an arm's effect on it in the first week predicts
the arm's effect on the long-term outcome (Athey et al. 2019's surrogate criterion, checked
the way Spotify's "impatient bandits" work checks it: across experiments, not across users).
Inputs are per-arm *effects* (arm minus its experiment's control), one row per treatment arm.

- :func:`validity`: Pearson and Spearman across arms with leave-one-out intervals, and the
  share of arms whose oriented signal effect has the sign of their outcome effect;
- :func:`users_needed`: how many users per arm an A/B test needs to see an effect this size;
- :func:`learn_composite`: non-negative weights on oriented signals that predict the outcome
  effect, the signals chosen by forward selection on leave-one-group-out error (groups =
  experiments, or arms when there is one experiment), and that error reported honestly (the
  selection nested inside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


def _corr(x: np.ndarray, y: np.ndarray, kind: str) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float((stats.pearsonr if kind == "pearson" else stats.spearmanr)(x, y)[0])


def validity(effect: np.ndarray, outcome: np.ndarray, orientation: int) -> dict[str, float]:
    """Across arms: correlations of the oriented signal effect with the outcome effect, the range
    of each when any one arm is left out, and the share of arms with agreeing signs."""
    x, y = orientation * np.asarray(effect, float), np.asarray(outcome, float)
    out: dict[str, float] = {}
    for kind in ("pearson", "spearman"):
        out[kind] = _corr(x, y, kind)
        loo = [_corr(np.delete(x, i), np.delete(y, i), kind) for i in range(len(x))]
        out[f"{kind}_loo_low"], out[f"{kind}_loo_high"] = (
            (float(np.nanmin(loo)), float(np.nanmax(loo))) if len(x) > 3 else (float("nan"), float("nan"))
        )
    moved = (x != 0) & (y != 0)
    out["sign_agreement"] = (
        float(np.mean(np.sign(x[moved]) == np.sign(y[moved]))) if moved.any() else float("nan")
    )
    return out


def users_needed(effect: float, sd: float, power: float, confidence: float = 0.95) -> float:
    """Users per arm for a two-sided test to detect ``effect`` in a per-user mean with SD ``sd``."""
    if effect == 0 or not np.isfinite(effect) or not np.isfinite(sd):
        return float("inf")
    z = stats.norm.ppf(0.5 + confidence / 2) + stats.norm.ppf(power)
    return float(np.ceil(2 * (z * sd / effect) ** 2))


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin |x w - y|^2 over w >= 0."""
    return optimize.nnls(x, y)[0]


def _loo_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, fit) -> np.ndarray:
    """Each row predicted by ``fit`` trained without its group."""
    pred = np.empty(len(y))
    for g in np.unique(groups):
        held = groups == g
        w = fit(x[~held], y[~held])
        pred[held] = x[held] @ w
    return pred


def rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


@dataclass(frozen=True)
class Composite:
    weights: np.ndarray  # per signal, on the *raw* (unstandardised, oriented) effects
    chosen: tuple[int, ...]  # the signals selected on all arms, in the order they entered
    loo_rmse: float  # nested: the selection rerun inside every fold
    loo_pred: np.ndarray


def _loo_residuals(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return _loo_predictions(x, y, groups, _nnls) - y


def forward_select(x: np.ndarray, y: np.ndarray, groups: np.ndarray, min_gain_se: float) -> list[int]:
    """Columns of ``x`` added one at a time, each the one that most lowers the leave-one-group-out
    squared error of a non-negative least-squares fit, while the drop beats ``min_gain_se``
    standard errors of its paired per-arm difference (the one-SE rule: with a dozen arms, a
    second signal must earn its place, or it only fits noise)."""
    chosen: list[int] = []
    residual = -y  # the empty model predicts no effect
    while len(chosen) < x.shape[1]:
        trials = [
            (j, _loo_residuals(x[:, [*chosen, j]], y, groups)) for j in range(x.shape[1]) if j not in chosen
        ]
        j, res = min(trials, key=lambda t: float(np.mean(t[1] ** 2)))
        gain = residual**2 - res**2
        noise = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
        if gain.mean() <= min_gain_se * noise:
            break
        chosen.append(j)
        residual = res
    return chosen


def learn_composite(x: np.ndarray, y: np.ndarray, groups: np.ndarray, min_gain_se: float) -> Composite:
    """Non-negative weights on the columns of ``x`` (oriented signal effects, one row per arm)
    predicting ``y`` (outcome effects) from the signals :func:`forward_select` keeps. No
    intercept: an arm that moves no signal is predicted to move nothing. The reported error
    reruns the selection without each held-out group, so it is what a new experiment would see."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale

    def fit(xa: np.ndarray, ya: np.ndarray, ga: np.ndarray) -> tuple[np.ndarray, list[int]]:
        w = np.zeros(xa.shape[1])
        cols = forward_select(xa, ya, ga, min_gain_se) if len(np.unique(ga)) > 2 else []
        if cols:
            w[cols] = _nnls(xa[:, cols], ya)
        return w, cols

    loo_pred = np.empty(len(y))
    for g in np.unique(groups):
        held = groups == g
        loo_pred[held] = xs[held] @ fit(xs[~held], y[~held], groups[~held])[0]
    w, chosen = fit(xs, y, groups)
    return Composite(weights=w / scale, chosen=tuple(chosen), loo_rmse=rmse(loo_pred, y), loo_pred=loo_pred)


def single_signal_loo_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Leave-one-group-out predictions of ``y ~ c * x`` with ``c >= 0`` (one oriented signal, or
    the fixed composite, rescaled to the outcome's units)."""
    return _loo_predictions(x.reshape(-1, 1), y, groups, _nnls)


def single_signal_loo(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Leave-one-group-out RMSE of :func:`single_signal_loo_predictions`."""
    return rmse(single_signal_loo_predictions(x, y, groups), y)


def squared_error_gap(pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean per-arm squared-error difference (a minus b) and its standard error: whether one
    predictor's lower RMSE is more than the arms' noise."""
    d = (pred_a - y) ** 2 - (pred_b - y) ** 2
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
