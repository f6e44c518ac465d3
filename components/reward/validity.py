"""Is a short-term signal worth optimising? Policy-level validity measured on past experiments.

A signal is valid at the policy level when an arm's effect on it in the first week predicts
the arm's effect on the long-term outcome (Athey et al. 2019's surrogate criterion, checked
the way Spotify's "impatient bandits" work checks it: across experiments, not across users).
Inputs are per-arm *effects* (arm minus its experiment's control), one row per treatment arm.

- :func:`validity`: Pearson and Spearman across arms with leave-one-out intervals, and the
  share of arms whose oriented signal effect has the sign of their outcome effect;
- :func:`users_needed`: how many users per arm an A/B test needs to see an effect this size;
- :func:`learn_composite`: non-negative weights on oriented signals that predict the outcome
  effect, the ridge penalty chosen by leave-one-group-out error (groups = experiments, or arms
  when there is one experiment), and that error reported honestly (the choice nested inside).
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


def _nnls_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """argmin |x w - y|^2 + ridge |w|^2 over w >= 0 (x standardised by the caller)."""
    if ridge > 0:
        x = np.vstack([x, np.sqrt(ridge) * np.eye(x.shape[1])])
        y = np.concatenate([y, np.zeros(x.shape[1])])
    return optimize.nnls(x, y)[0]


def _loo_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray, fit) -> np.ndarray:
    """Each row predicted by ``fit`` trained without its group."""
    pred = np.empty(len(y))
    for g in np.unique(groups):
        held = groups == g
        w = fit(x[~held], y[~held])
        pred[held] = x[held] @ w
    return pred


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


@dataclass(frozen=True)
class Composite:
    weights: np.ndarray  # per signal, on the *raw* (unstandardised, oriented) effects
    ridge: float
    loo_rmse: float  # nested: the ridge chosen inside every fold
    loo_pred: np.ndarray


def learn_composite(x: np.ndarray, y: np.ndarray, groups: np.ndarray, ridges: list[float]) -> Composite:
    """Non-negative weights on the columns of ``x`` (oriented signal effects, one row per arm)
    predicting ``y`` (outcome effects). No intercept: an arm that moves no signal is predicted
    to move nothing."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale

    def choose(xa: np.ndarray, ya: np.ndarray, ga: np.ndarray) -> float:
        errs = [
            _rmse(_loo_predictions(xa, ya, ga, lambda a, b, r=r: _nnls_ridge(a, b, r)), ya) for r in ridges
        ]
        return ridges[int(np.argmin(errs))]

    def nested_fit(xa: np.ndarray, ya: np.ndarray, ga: np.ndarray | None = None) -> np.ndarray:
        ga = np.arange(len(ya)) if ga is None else ga
        return _nnls_ridge(xa, ya, choose(xa, ya, ga) if len(np.unique(ga)) > 2 else ridges[0])

    loo_pred = np.empty(len(y))
    for g in np.unique(groups):
        held = groups == g
        w = nested_fit(xs[~held], y[~held], groups[~held])
        loo_pred[held] = xs[held] @ w
    ridge = choose(xs, y, groups)
    w = _nnls_ridge(xs, y, ridge)
    return Composite(weights=w / scale, ridge=ridge, loo_rmse=_rmse(loo_pred, y), loo_pred=loo_pred)


def single_signal_loo(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Leave-one-group-out RMSE of ``y ~ c * x`` with ``c >= 0`` (one oriented signal, or the
    fixed composite, rescaled to the outcome's units)."""
    xc = x.reshape(-1, 1)
    return _rmse(_loo_predictions(xc, y, groups, lambda a, b: _nnls_ridge(a, b, 0.0)), y)
