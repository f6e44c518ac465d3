"""Measure the challenger for the gate: its predicted effect on active days and its guardrails.

The measuring is evaluation's; the rule is the registry's (:mod:`components.registry.gate`).
Everything here uses only what production has — logged slates, the reward model, the
experiment library's scorecard — so the decision is the one a real run would make.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from components.evaluate import ope
from components.evaluate.logged import LoggedSlates
from components.params import Params
from components.policy.metrics import slate_shape
from components.registry.gate import Decision, decide, predicted_effect
from components.reward.composite import WEIGHTS_FILE

SCORECARD_FILE = "scorecard.json"  # written by the signals stage beside weights.json


@dataclass(frozen=True)
class Calibration:
    """What the signals stage says about the composite: how to read it in days, how far to trust it."""

    days_per_unit: float
    loo_rmse: float
    source: str  # learned | fixed
    guardrail_validity: dict[str, float] | None  # None: no library to validate against
    active_days_sd: float  # per-user SD of active days in the library's control arm (for planning)

    @classmethod
    def read(cls, signals_dir: Path) -> "Calibration":
        weights = json.loads((Path(signals_dir) / WEIGHTS_FILE).read_text())
        card_file = Path(signals_dir) / SCORECARD_FILE
        card = json.loads(card_file.read_text()) if card_file.exists() else {}
        guard = {k: v["pearson"] for k, v in card.get("guardrails", {}).items()} or None
        arms_file = Path(signals_dir) / "arms.parquet"
        sd = float("nan")
        if arms_file.exists():
            arms = pl.read_parquet(arms_file)
            if arms.height:
                sd = float(arms.filter("is_control")["active_days_sd"][0])
        active = weights["active"]
        return cls(float(active["days_per_unit"]), float(active["loo_rmse"]), active["source"], guard, sd)


def slate_guardrails(slates: np.ndarray, skip_rate: float, tracks: pl.DataFrame) -> dict[str, float]:
    """The guardrail values of a policy's own slates (same definitions as the library's arms)."""
    shape = slate_shape(slates, tracks)
    return {
        "skip_rate": skip_rate,
        **{k: shape[k] for k in ("genre_diversity", "artist_concentration", "coverage")},
    }


def effective_share(pi: np.ndarray, mu: np.ndarray, max_weight: float) -> float:
    """Kish effective sample size of ``pi``'s (clipped, per-slot) importance weights on the logged
    slots, as a share of the slots: how much of the log an estimate for ``pi`` rests on."""
    w = np.minimum(ope.slot_weights(pi, mu, "iips"), max_weight).ravel()
    return float(w.sum() ** 2 / max((w**2).sum(), 1e-12) / max(w.size, 1))


def gate_decision(
    params: Params,
    logged: LoggedSlates,
    q: np.ndarray,
    challenger: dict,
    baseline: tuple[str, np.ndarray, np.ndarray],
    skip_rate: float,
    kl: float,
    calibration: Calibration,
    tracks: pl.DataFrame,
    reference_pi: np.ndarray,
    reward_model: dict | None = None,
) -> Decision:
    """Challenger vs ``baseline`` = (name, pi, q_pi): paired DR lift of the composite on the same
    logged slates (``q``: the reward model's value of the logged items), read as a predicted
    effect on active days, and the guardrails.

    Support is the challenger's effective sample size relative to ``reference_pi``'s — the
    imitation (SFT) policy, the learned policy closest to the logs, which RL is anchored to. An
    absolute share of the logged slots would measure how thinly the logging policy spreads its
    propensities over the catalogue, not how far the challenger left the logs: in the default
    run the imitation policy itself keeps only 0.7 % of them."""
    ep = params.evaluate
    r, mu = logged.matrix("reward"), logged.matrix("propensity")
    name, pi_a, qpi_a = baseline
    lift = ope.paired_lift(
        r, pi_a, challenger["pi"], mu, q, qpi_a, challenger["q_pi"], ep.max_weight, ep.n_bootstrap, ep.seed
    )
    predicted, unit = predicted_effect(lift, calibration.days_per_unit, calibration.loo_rmse)
    model_free, _ = predicted_effect(
        ope.paired_sn_lift(r, pi_a, challenger["pi"], mu, ep.max_weight, ep.n_bootstrap, ep.seed),
        calibration.days_per_unit,
        calibration.loo_rmse,
    )
    support = effective_share(challenger["pi"], mu, ep.max_weight) / max(
        effective_share(reference_pi, mu, ep.max_weight), 1e-12
    )
    proxy = {
        "lift_per_slot": lift[0],
        "low": lift[1],
        "high": lift[2],
        "composite": calibration.source,
        "days_per_unit": calibration.days_per_unit,
        "composite_loo_rmse": calibration.loo_rmse,
        "model_free_lift_per_slot": model_free[0] / calibration.days_per_unit
        if np.isfinite(calibration.days_per_unit)
        else model_free[0],
    }
    return decide(
        params.register_,
        predicted,
        unit,
        name,
        slate_guardrails(challenger["slates"], skip_rate, tracks),
        calibration.guardrail_validity,
        kl,
        proxy,
        support,
        reward_model,
        model_free,
    )


def reward_model_validity(
    reward,
    signals_dir: Path,
    experiments_dir: Path,
    raw_dir: Path,
    features_dir: Path,
    params: Params,
    tracks: pl.DataFrame,
    per_arm: int = 1500,
) -> dict:
    """The reward model's score as a candidate signal: each library arm's mean score of (a sample
    of) its first-week slates, minus its control's, against the arm's effect on active days."""
    from components import contract
    from components.library import LIBRARY_LABELS, Library
    from components.reward.examples import library_features
    from components.reward.validity import validity

    labels_file, arms_file = Path(signals_dir) / LIBRARY_LABELS, Path(signals_dir) / "arms.parquet"
    if not labels_file.exists() or not arms_file.exists():
        return {}
    arms = pl.read_parquet(arms_file)
    library = Library.read(experiments_dir)
    if arms.height < 2 or library.empty:
        return {}
    week = pl.read_parquet(
        labels_file, columns=["event_id", "user_id", "ts", "session_id", "experiment_id", "policy_id"]
    )
    signal_days = json.loads((Path(signals_dir) / SCORECARD_FILE).read_text()).get("signal_days", 7)
    week = (
        week.join(arms.select("experiment_id", "policy_id", "start"), on=["experiment_id", "policy_id"])
        .filter(pl.col("ts") < pl.col("start") + pl.duration(days=signal_days))
        .drop("start")
    )
    week = week.sort("event_id").filter(
        pl.int_range(pl.len()).shuffle(seed=params.evaluate.seed).over("experiment_id", "policy_id") < per_arm
    )
    raw_plays = pl.from_arrow(contract.read(raw_dir, "plays", ["user_id", "ts", "track_id"]))
    frame = library_features(week, library, raw_plays, features_dir, params.features, tracks)
    scored = frame.select("experiment_id", "policy_id").with_columns(
        score=pl.Series(reward.score_frame(frame))
    )
    means = scored.group_by("experiment_id", "policy_id").agg(pl.col("score").mean())
    table = arms.join(means, on=["experiment_id", "policy_id"])
    control = table.filter("is_control").select("experiment_id", control_score="score")
    table = table.join(control, on="experiment_id").with_columns(
        d_score=pl.col("score") - pl.col("control_score")
    )
    treated = table.filter(~pl.col("is_control"))
    return validity(treated["d_score"].to_numpy(), treated["d_active_days_adj"].to_numpy(), 1) | {
        "arms": treated.height,
        "sampled_per_arm": per_arm,
    }
