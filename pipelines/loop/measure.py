"""What a round bought, measured against the world's truth (simulation only).

For round r's policy π_r, trained on logs that hold the slates π_{r-1} served in round r:

- **off-policy estimates from those logs**: IIPS, SN-IIPS, DR (and the others) of π_r's value per
  slot, on the held-out listeners' served slates with the propensities the service logged, π_r's
  probabilities as the service would serve it (the same sampler, T and ε); ESS per estimator;
- **the truth they estimate**: π_r served the same way, from the same world state, for the same
  days (:func:`components.world.run_ab`, its own seed), its logs labelled by the same label code —
  the mean composite reward per slot; beside it the true long-term value of what it served, its
  slates' diversity and the listeners' distinct artists;
- **the reward model against the truth**: Spearman with the true long-term value on the served
  (logged) pairs and on uniformly random pairs (:func:`components.evaluate.truth.reward_model_truth`).

Reading the world's truth makes this module a truth reader (the architecture test lists it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from components.errors import EncoreError
from components.evaluate import ope
from components.evaluate.gating import slate_guardrails
from components.evaluate.logged import LoggedSlates, held_out_slates, logged_q, policy_numbers
from components.evaluate.truth import _slates, label_ab_logs, reward_model_truth
from components.featurestore.lookup import FeatureLookup
from components.params import ABParams, Params
from components.reward.composite import with_reward
from components.reward.model import RewardModel

OPE_ESTIMATORS = ("iips", "sniips", "dr")  # reported with their errors; all five are in the JSON


def served_decoding(params: Params) -> ABParams:
    """The A/B params that make :func:`policy_numbers` score a policy as the loop serves it."""
    lp = params.loop
    if lp.temperature == 0:
        return params.ab.model_copy(update={"lm_decoding": "greedy"})
    return params.ab.model_copy(
        update={"lm_decoding": "sample", "lm_temperature": lp.temperature, "lm_epsilon": lp.epsilon}
    )


def served_log(
    params: Params, features_dir: Path, labels_dir: Path, policy_id: int, weights: dict[str, float]
) -> LoggedSlates:
    """The round's treatment slates of held-out listeners, every slot labelled, with propensities."""
    lp, ep = params.loop, params.evaluate
    return held_out_slates(
        params,
        features_dir,
        labels_dir,
        params.sft_policy.slate_size,
        lp.max_slates,
        ep.seed,
        weights,
        policy_id,
    )


def off_policy(
    params: Params, logged: LoggedSlates, policy_dir: Path, reward: RewardModel
) -> dict[str, ope.Estimate]:
    """Every estimator of ``policy_dir``'s value per slot (as served) from ``logged``."""
    ep = params.evaluate
    numbers = policy_numbers(logged, policy_dir, reward, served_decoding(params), ep.seed)
    r, mu = logged.matrix("reward"), logged.matrix("propensity")
    q = logged_q(logged, reward)
    estimates = ope.estimate(r, numbers["pi"], mu, q, numbers["q_pi"], ep.max_weight, ep.n_bootstrap, ep.seed)
    return {e.estimator: e for e in estimates}


def on_policy_truth(
    params: Params,
    world_dir: Path,
    policy,
    raw_dir: Path,
    labels_dir: Path,
    tracks: pl.DataFrame,
    weights: dict[str, float],
    days: int,
    progress: bool = True,
) -> dict[str, float]:
    """``policy`` served for ``days`` days (a round's: :func:`pipelines.loop.core.round_days`) from
    the world in ``world_dir`` to ``loop.truth_listeners`` listeners: its true value per slot (the
    composite of its labelled logs: the days whose labels mature within the run, as in the round's
    own logs), the true long-term value of what it served, diversity and distinct artists.

    ``raw_dir``/``labels_dir``: the logs up to ``world_dir``'s day (history and surrogate)."""
    from components.world import load_world, run_ab
    from components.world.response import true_long_term_value

    lp = params.loop
    world, next_day = load_world(world_dir)
    # its own seed (not the world's): the truth run must not replay the logged days' noise
    truth_seed = lp.seed + 1
    result = run_ab(
        world,
        {"policy": policy},
        days,
        truth_seed,
        next_day,
        lp.truth_listeners,
        0.95,
        progress,
        True,
    )
    imp = result.impressions["policy"]
    labels = label_ab_logs(result, "policy", raw_dir, tracks, params, labels_dir, n_days=days)
    require_labelled(labels, weights, days - lp.days_per_round, "the on-policy truth run's logs")
    reward = with_reward(labels, weights)["reward"].drop_nulls()
    dyn, cat, pop = world.params.dynamics, world.catalogue, world.population
    long_term = true_long_term_value(
        dyn,
        cat,
        pop,
        imp["user_id"].to_numpy().astype(np.int64),
        imp["track_id"].to_numpy().astype(np.int64),
        world.params.oracle.habit_weight,
    )
    shape = slate_guardrails(_slates(imp), float(imp["skipped"].mean()), tracks)
    return {
        "value_per_slot": float(reward.mean()),
        "long_term_value_per_slot": float(long_term.mean()),
        "labelled_slots": float(len(reward)),
        "distinct_artists": float(result.outcomes["policy"]["distinct_artists"].mean()),
        "active_days": float(result.outcomes["policy"]["active_days"].mean()),
        "genre_diversity": shape["genre_diversity"],
        "artist_concentration": shape["artist_concentration"],
        "catalogue_coverage": imp["track_id"].n_unique() / tracks.height,
    }


def require_labelled(labels: pl.DataFrame, weights: dict[str, float], lag: int, what: str) -> None:
    """Raise unless some row of ``labels`` has its composite reward. A round learns from and is
    measured on labelled days only; with none it would train on no served example and report a NaN
    truth — silently. ``lag``: the days the composite's labels take to mature."""
    if labels.height and with_reward(labels, weights)["reward"].null_count() < labels.height:
        return
    nulls = ", ".join(
        f"{c} null on {labels[c].null_count():,}" for c, w in weights.items() if w and c in labels.columns
    )
    raise EncoreError(
        f"{what}: none of its {labels.height:,} impressions has the composite reward ({nulls}); the "
        f"composite's labels are known {lag} days after an impression and the round's days are too "
        "recent. A round must serve its days plus that lag (pipelines.loop.core.round_days), or the "
        "composite must use shorter-horizon signals (signals.composite_scope, label.composite)."
    )


def reward_model_agreement(
    params: Params, reward: RewardModel, world_dir: Path, lookup: FeatureLookup, logged: LoggedSlates
) -> dict[str, float]:
    """Spearman of the reward model with the truth on the served pairs and on random pairs."""
    ep = params.evaluate
    q = reward.score_frame(logged.frame)
    return reward_model_truth(
        reward,
        world_dir,
        lookup,
        logged.frame["user_id"].to_numpy(),
        logged.frame["track_id"].to_numpy(),
        q,
        logged.k,
        ep.truth_listeners,
        ep.seed,
    )


def estimate_errors(estimates: dict[str, ope.Estimate], truth: float, slots: int) -> dict[str, float]:
    """Each estimate, its relative error against ``truth`` and its ESS as a share of the slots."""
    out: dict[str, float] = {}
    for name, e in estimates.items():
        out[f"ope/{name}"] = e.value
        out[f"ope/{name}_low"] = e.low
        out[f"ope/{name}_high"] = e.high
        out[f"ope/{name}_relative_error"] = (e.value - truth) / abs(truth) if truth else float("nan")
        out[f"ope/{name}_ess_share"] = e.ess / max(slots, 1)
    return out
