"""The ground truth, in simulation: the A/B test, each policy's true per-slot composite, whether the
gate's guardrails would hold the long-term oracle, and whether the gate's decision was right.

The only evaluation code that reads the world (``tests/unit/test_architecture.py``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from components import contract
from components.evaluate import ope
from components.evaluate.gating import slate_guardrails
from components.featurestore.lookup import FeatureLookup
from components.params import Params
from components.registry.gate import SLATE_GUARDRAILS
from components.reward.composite import with_reward
from components.world import ABResult


def simulated_truth(
    params: Params,
    world_dir: Path,
    raw_dir: Path,
    labels_dir: Path,
    policy_dirs: dict[str, Path],
    lookup: FeatureLookup,
    weights: dict[str, float],
    tracks: pl.DataFrame,
    extra: dict | None = None,
    progress: bool = True,
) -> dict:
    """The A/B test against ground truth (logging, the candidates, ``extra`` arms such as the
    champion, both oracles) and each arm's true per-slot composite from its own logs."""
    from components.evaluate.arms import policy_arm
    from components.evaluate.simulated_ab import TABLE_METRICS, simulated_ab, world_policies

    ab = params.ab
    arms = world_policies(world_dir)
    policies = {"logging": arms["logging"]}
    for i, (name, path) in enumerate(policy_dirs.items()):
        policies[name] = policy_arm(path, lookup, ab, policy_id=100 + i, seed=params.evaluate.seed)
    policies |= extra or {}
    policies |= {"click_oracle": arms["click_oracle"], "long_term_oracle": arms["long_term_oracle"]}
    result = simulated_ab(world_dir, policies, ab, progress=progress, record=True)

    table = result.summary().filter(pl.col("metric").is_in(TABLE_METRICS)).to_dicts()
    lifts = {
        base: [
            {"arm": arm, "metric": m, **_lift(result.lift(base, arm, m))}
            for arm in result.outcomes
            if arm != base
            for m in TABLE_METRICS
        ]
        for base in ("sft", "logging", "champion", "rlhf_click", "rlhf_midterm_round_0")
        if base in result.outcomes
    }
    true_value, oracle_slates = {}, None
    for arm in policies:
        labels = label_ab_logs(result, arm, raw_dir, tracks, params, labels_dir)
        true_value[arm] = float(with_reward(labels, weights)["reward"].drop_nulls().mean())
        if arm == "long_term_oracle":
            oracle_slates = (
                _slates(result.impressions[arm]),
                float(result.impressions[arm]["skipped"].mean()),
            )
    return {
        "ab": table,
        "lifts": lifts,
        "true_value_per_slot": true_value,
        "plan_active_days": _plan_from_truth(result, params.evaluate.power),
        "users_per_arm": result.outcomes["logging"].height,
        "days": ab.horizon_days,
        "decoding": served_as(ab),
        "daily_active": {arm: v.tolist() for arm, v in result.daily_active.items()},
        "oracle_guardrails": slate_guardrails(*oracle_slates, tracks) if oracle_slates else {},
        "catalogue_coverage": {
            arm: imp["track_id"].n_unique() / tracks.height for arm, imp in result.impressions.items()
        },
    }


def label_ab_logs(
    result: ABResult,
    arm: str,
    raw_dir: Path,
    tracks: pl.DataFrame,
    params: Params,
    labels_dir: Path,
    n_days: int | None = None,
) -> pl.DataFrame:
    """An A/B arm's logs labelled exactly as the training logs were (same code, same surrogate),
    on the log's clock: the test resumes the world where the log ends, so the participants' logged
    history is theirs, and the labels that look back (repetition, discovery) read it. ``n_days``:
    the days the arm ran (default ``ab.horizon_days``); labels reaching past them are censored."""
    from components.logs import window
    from components.reward.labels import PLAY_COLUMNS, History, label_with

    log_start, _ = window(raw_dir)
    start = log_start + timedelta(days=result.start_day)
    imp, plays = result.impressions[arm], result.plays[arm]

    def ts(df: pl.DataFrame) -> pl.Expr:
        return pl.lit(start) + pl.duration(microseconds=(pl.col("seconds") * 1e6).cast(pl.Int64))

    users = imp["user_id"].unique().implode()
    before = pl.col("user_id").is_in(users) & (pl.col("ts") < start)
    history = History(
        start=log_start,
        impressions=pl.from_arrow(
            contract.read(raw_dir, "impressions", ["user_id", "track_id", "ts"])
        ).filter(before),
        plays=pl.from_arrow(contract.read(raw_dir, "plays", PLAY_COLUMNS)).filter(before),
    )
    sources = pl.Series(list(contract.PLAY_SOURCES))
    return label_with(
        imp.with_row_index("event_id").with_columns(ts=ts(imp), session_id=pl.col("session")),
        plays.with_columns(ts=ts(plays), source=sources.gather(plays["source"].cast(pl.UInt32))),
        tracks,
        start,
        params.ab.horizon_days if n_days is None else n_days,
        params.label,
        labels_dir,
        history,
    )


def _slates(imp: pl.DataFrame) -> np.ndarray:
    """(sessions, k) track ids of an A/B arm's recorded impressions, in position order."""
    lists = (
        imp.sort("session", "position").group_by("session", maintain_order=True).agg("track_id")["track_id"]
    )
    return np.array(lists.to_list(), dtype=np.int64)


def verdict(decision: dict, truth: dict) -> dict:
    """Was the gate right? Promote is right when the challenger truly beats the baseline on
    active days (the A/B lift's estimate above 0), hold is right when it does not."""
    baseline = decision["baseline"]
    rows = [
        r
        for r in truth["lifts"].get(baseline, [])
        if r["arm"] == "rlhf_midterm" and r["metric"] == "active_days"
    ]
    if not rows:
        return {}
    lift = rows[0]
    truly_better = lift["estimate"] > 0
    return {
        "right": decision["promote"] == truly_better,
        "true_lift": lift["estimate"],
        "true_lift_low": lift["low"],
        "true_lift_high": lift["high"],
        "truly_better": truly_better,
        "significant": lift["low"] > 0 or lift["high"] < 0,
    }


def miscalibrated(decision: dict, oracle: dict) -> dict[str, bool]:
    """Per slate guardrail: would it hold the long-term oracle (the best policy there is)?"""
    out = {}
    for name, (_, kind, _) in SLATE_GUARDRAILS.items():
        if name in oracle:
            limit, value = decision["guardrails"][name]["limit"], oracle[name]
            out[name] = bool(value > limit if kind == "max" else value < limit)
    return out


def _plan_from_truth(result, power: float) -> dict:
    """What the online test would really need: users per arm to detect mid-term-RL's *true* lift
    in 28-day active days over the logging policy (independent arms, no common random numbers)."""
    if "rlhf_midterm" not in result.outcomes:
        return {}
    control = result.outcomes["logging"]["active_days"].to_numpy().astype(np.float64)
    treated = result.outcomes["rlhf_midterm"]["active_days"].to_numpy().astype(np.float64)
    lift, sd = float(treated.mean() - control.mean()), float(control.std(ddof=1))
    return {
        "lift": lift,
        "sd_per_user": sd,
        "power": power,
        "users_per_arm": ope.users_needed(lift, sd, power),
    }


def _lift(lift) -> dict:
    return {"estimate": lift.estimate, "low": lift.low, "high": lift.high, "relative": lift.relative}


def reward_model_truth(
    reward,
    world_dir: Path,
    lookup: FeatureLookup,
    logged_users: np.ndarray,
    logged_tracks: np.ndarray,
    logged_scores: np.ndarray,
    k: int,
    n_users: int,
    seed: int,
) -> dict[str, float]:
    """Does the reward model rank what is truly worth recommending? Spearman of its score with the
    world's true long-term value of each (listener, track), on two sets of pairs:

    - ``logged``: the held-out logged slates — the logging policy's neighbourhood, where the model
      was trained;
    - ``random``: ``n_users`` listeners with features, each with ``k`` distinct catalogue tracks
      drawn uniformly — where RL takes the policy once it leaves the logs.

    Each set reports the pooled correlation (listeners differ in how much anything is worth to them)
    and the mean within-listener correlation (what ranking a listener's slate needs)."""
    from components.world import load_world
    from components.world.response import true_long_term_value

    world, _ = load_world(world_dir)
    dyn, cat, pop = world.params.dynamics, world.catalogue, world.population
    habit_weight = world.params.oracle.habit_weight

    def truth(users: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        return true_long_term_value(
            dyn, cat, pop, users.astype(np.int64), tracks.astype(np.int64), habit_weight
        )

    rng = np.random.default_rng(seed)
    known = lookup.users()["user_id"].to_numpy()
    users = np.sort(rng.choice(known, size=min(n_users, len(known)), replace=False))
    slates = np.stack([rng.choice(cat.n_tracks, size=k, replace=False) for _ in users])
    random_scores = reward.score(users, slates)
    random_truth = truth(np.repeat(users, k), slates.ravel()).reshape(slates.shape)
    out = {"random/pairs": float(slates.size), "logged/pairs": float(len(logged_tracks))}
    out |= _rank_agreement("random", random_scores, random_truth)
    logged_truth = truth(logged_users, logged_tracks)
    out |= _rank_agreement("logged", logged_scores.reshape(-1, k), logged_truth.reshape(-1, k))
    return out


def _rank_agreement(name: str, score: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pooled Spearman over every (listener, track) of the (listeners, k) arrays, and the mean
    Spearman within a listener's row (rows where the model or the truth is constant rank nothing
    and are left out)."""
    from scipy import stats

    pooled = float(stats.spearmanr(score.ravel(), truth.ravel())[0])
    rs, rt = stats.rankdata(score, axis=1), stats.rankdata(truth, axis=1)
    rs, rt = rs - rs.mean(axis=1, keepdims=True), rt - rt.mean(axis=1, keepdims=True)
    norm = np.sqrt((rs**2).sum(axis=1) * (rt**2).sum(axis=1))
    ranked = norm > 0
    within = (rs * rt).sum(axis=1)[ranked] / norm[ranked]
    return {
        f"{name}/spearman": pooled,
        f"{name}/spearman_within": float(within.mean()) if ranked.any() else float("nan"),
    }


def served_as(ab) -> str:
    """How the learned policies were served in the A/B test, in words (the report's caption)."""
    if ab.lm_decoding == "rank":
        return (
            f"generate-then-rank: {ab.rank_draws} slates sampled at T {ab.lm_temperature:g}, ranked by the "
            f"policy's own reward model, ε {ab.lm_epsilon:g} (a policy with no ranker/ — SFT — greedy)"
        )
    if ab.lm_decoding == "sample":
        return f"sampled by the service's sampler at T {ab.lm_temperature:g}, ε {ab.lm_epsilon:g}"
    return "greedy (each policy's argmax slate)"
