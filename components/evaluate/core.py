"""Stage ``evaluate``: how good is each candidate policy, and how far can the offline numbers be trusted?

1. Off-policy estimates (IIPS, RIPS, self-normalised variants, doubly robust) of each
   policy's value per slot on held-out logged slates, with bootstrap CIs, ESS, largest
   weight and the clip — plus the logging policy itself (weights are exactly 1).
2. Ranking metrics on held-out listeners' next plays; coverage, diversity, novelty.
3. With the simulator's truth: the simulated A/B test (logging, SFT, click-RL, mid-term-RL,
   both oracles) with CIs, the true per-slot value of each policy (its own A/B logs labelled
   exactly like the training logs) and every estimator's error against it.
4. A/B planning: users (x days) an online test needs to detect the estimated lift.
With real logs (no truth) 3 is skipped and the report says so plainly.

Outputs: ``report_dir/evaluation.html`` (plots), ``summary.md``, ``evaluation.json`` (all
tables); the returned metrics go to ``metrics/evaluate.json``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from components import contract
from components.evaluate import ope
from components.evaluate.logged import held_out_slates, policy_numbers
from components.evaluate.ranking import ranking_metrics
from components.featurestore.lookup import FeatureLookup
from components.io import atomic_dir
from components.params import Params
from components.policy.model import CURVE_CSV
from components.registry import client as registry
from components.registry.gate import Decision, decide, write_decision
from components.reward.model import RewardModel
from components.tracking import tracking_uri

POLICIES = ("sft", "rlhf_click", "rlhf_midterm")  # candidate names, in the order reports show them


def run(
    params: Params,
    raw_dir: Path,
    features_dir: Path,
    labels_dir: Path,
    world_dir: Path,
    reward_dir: Path,
    policy_dirs: dict[str, Path],
    report_dir: Path,
    progress: bool = True,
) -> dict[str, float]:
    from components.world import has_truth

    ep, ab = params.evaluate, params.ab
    sample, temperature = ab.lm_decoding == "sample", ab.lm_temperature
    tracks = pl.from_arrow(contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(features_dir, params.features, tracks)
    reward = RewardModel.load(reward_dir).with_lookup(lookup)
    k = params.sft_policy.slate_size

    # 1. off-policy estimates on held-out logged slates
    logged = held_out_slates(params, features_dir, labels_dir, k, ep.max_slates, ep.seed)
    r, mu = logged.matrix("reward"), logged.matrix("propensity")
    q = reward.score_frame(logged.frame).reshape(logged.n, k)
    numbers = {
        name: policy_numbers(logged, path, reward, temperature, sample, ep.seed)
        for name, path in policy_dirs.items()
    }
    estimates = {"logging": ope.estimate(r, mu, mu, q, q, ep.max_weight, ep.n_bootstrap, ep.seed)}
    skip_rate = {"logging": float(logged.matrix("skipped").mean())}
    for name, num in numbers.items():
        estimates[name] = ope.estimate(
            r, num["pi"], mu, q, num["q_pi"], ep.max_weight, ep.n_bootstrap, ep.seed
        )
        sn = {
            e.estimator: e
            for e in ope.estimate(
                logged.matrix("skipped"), num["pi"], mu, None, None, ep.max_weight, ep.n_bootstrap, ep.seed
            )
        }
        skip_rate[name] = sn["sniips"].value

    # 2. ranking on held-out listeners
    held = _held_out_sequences(params, raw_dir, features_dir)
    ranking = ranking_metrics(
        policy_dirs, held["sequences"], held["train_plays"], tracks, sample, temperature, ep.seed
    )

    # 4. planning, from the mid-term policy's DR lift over the logging policy
    plan = _plan(logged, estimates, ep.power, ab.horizon_days)

    # 3. the truth, when there is one
    truth: dict = {}
    if has_truth(world_dir):
        truth = _simulated_truth(params, world_dir, labels_dir, policy_dirs, lookup, progress)

    curves = {
        name: pl.read_csv(Path(path) / CURVE_CSV)
        for name, path in policy_dirs.items()
        if name.startswith("rlhf")
    }
    decision = _gate(params, logged, r, mu, q, numbers, skip_rate, ranking, curves, reward)
    tables = {
        "ope": {name: [e.as_dict() for e in es] for name, es in estimates.items()},
        "skip_rate_snips": skip_rate,
        "ranking": ranking,
        "plan": plan,
        "truth": truth,
        "logged_slates": logged.n,
        "has_truth": bool(truth),
        "gate": decision.as_dict(),
    }
    from components.evaluate.report import render_html, render_markdown

    with atomic_dir(report_dir) as tmp:
        (tmp / "evaluation.json").write_text(json.dumps(tables, indent=2, default=float))
        (tmp / "summary.md").write_text(render_markdown(tables))
        (tmp / "evaluation.html").write_text(render_html(tables, curves))
        write_decision(tmp, decision)
    return _flat_metrics(tables, policy_dirs)


def _gate(
    params: Params,
    logged,
    r,
    mu,
    q,
    numbers: dict,
    skip_rate: dict,
    ranking: dict,
    curves: dict,
    reward: RewardModel,
) -> Decision:
    """Challenger (mid-term RL) vs the registry's champion — or, for the first model, the logging policy."""
    ep, ab, rp = params.evaluate, params.ab, params.register_
    challenger = numbers["rlhf_midterm"]
    registry.connect(tracking_uri(params.tracking))
    champion_dir = registry.downloaded_policy(rp.policy_model, "champion")
    if champion_dir is not None:
        champ = policy_numbers(
            logged, champion_dir, reward, ab.lm_temperature, ab.lm_decoding == "sample", ep.seed
        )
        base, pi_a, qpi_a = "champion", champ["pi"], champ["q_pi"]
    else:
        base, pi_a, qpi_a = "logging", mu, q
    lift = ope.paired_lift(
        r, pi_a, challenger["pi"], mu, q, qpi_a, challenger["q_pi"], ep.max_weight, ep.n_bootstrap, ep.seed
    )
    curve = curves["rlhf_midterm"]
    kl = float(curve["kl"].tail(max(1, curve.height // 10)).mean())
    return decide(rp, lift, base, skip_rate["rlhf_midterm"], ranking["rlhf_midterm"]["genre_diversity"], kl)


def _held_out_sequences(params: Params, raw_dir: Path, features_dir: Path) -> dict:
    from components.policy.sequences import load_sequences, split

    seqs, _, _ = load_sequences(params.sft_policy, raw_dir, features_dir)
    train, test, _ = split(seqs, params.sft_policy)
    n = min(len(test), params.evaluate.ranking_sequences)
    return {"sequences": test.take(np.arange(n)), "train_plays": train.completion.ravel()}


def _plan(logged, estimates: dict, power: float, days: int) -> dict:
    """Users per arm to detect the DR-estimated lift of the mid-term policy over logging."""
    if "rlhf_midterm" not in estimates:
        return {}
    dr = {name: {e.estimator: e for e in es}["dr"] for name, es in estimates.items()}
    lift = dr["rlhf_midterm"].value - dr["logging"].value
    # sorted: group_by order varies between runs, and float sums depend on order
    per_user = logged.frame.group_by("user_id").agg(pl.col("reward").mean()).sort("user_id")["reward"]
    sd = float(per_user.std()) if per_user.len() > 1 else float("nan")
    users = ope.users_needed(lift, sd, power)
    return {
        "lift_per_slot": lift,
        "sd_per_user": sd,
        "power": power,
        "users_per_arm": users,
        "days": days,
        "user_days_per_arm": users * days if np.isfinite(users) else float("inf"),
    }


def _simulated_truth(
    params: Params,
    world_dir: Path,
    labels_dir: Path,
    policy_dirs: dict[str, Path],
    lookup: FeatureLookup,
    progress: bool,
) -> dict:
    """The A/B test against ground truth, and each policy's true per-slot value from its own logs."""
    from components.evaluate.simulated_ab import TABLE_METRICS, simulated_ab, world_policies
    from components.policy.generative import GenerativePolicy
    from components.policy.model import load as load_policy
    from components.reward.labels import label_with

    ab = params.ab
    arms = world_policies(world_dir)
    policies = {"logging": arms["logging"]}
    for i, (name, path) in enumerate(policy_dirs.items()):
        model, _, vocab = load_policy(path)
        policies[name] = GenerativePolicy(
            model,
            vocab,
            lookup,
            policy_id=100 + i,
            seed=params.evaluate.seed,
            sample=ab.lm_decoding == "sample",
            temperature=ab.lm_temperature,
        )
    policies |= {"click_oracle": arms["click_oracle"], "long_term_oracle": arms["long_term_oracle"]}
    result = simulated_ab(world_dir, policies, ab, progress=progress, record=True)

    table = result.summary().filter(pl.col("metric").is_in(TABLE_METRICS)).to_dicts()
    lifts = {}
    for base in ("sft", "logging"):
        if base in result.outcomes:
            lifts[base] = [
                {"arm": arm, "metric": m, **_lift(result.lift(base, arm, m))}
                for arm in result.outcomes
                if arm != base
                for m in TABLE_METRICS
            ]
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)  # A/B logs count time from the test's start
    true_value = {}
    for arm in policies:
        imp, plays = result.impressions[arm], result.plays[arm]
        ts = lambda df: pl.lit(start) + pl.duration(microseconds=(pl.col("seconds") * 1e6).cast(pl.Int64))  # noqa: E731
        labels = label_with(
            imp.with_row_index("event_id").with_columns(ts=ts(imp), session_id=pl.col("session")),
            plays.with_columns(ts=ts(plays)),
            start,
            ab.horizon_days,
            params.label,
            labels_dir,
        )
        true_value[arm] = float(labels["reward"].drop_nulls().mean())
    return {
        "ab": table,
        "lifts": lifts,
        "true_value_per_slot": true_value,
        "plan_active_days": _plan_from_truth(result, params.evaluate.power),
        "users_per_arm": result.outcomes["logging"].height,
        "days": ab.horizon_days,
        "daily_active": {arm: v.tolist() for arm, v in result.daily_active.items()},
    }


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


def _flat_metrics(tables: dict, policy_dirs: dict[str, Path]) -> dict[str, float]:
    gate = tables["gate"]
    out: dict[str, float] = {
        "eval/logged_slates": tables["logged_slates"],
        "eval/has_truth": float(tables["has_truth"]),
        "gate/promote": float(gate["promote"]),
        "gate/lift": gate["lift"],
        "gate/lift_low": gate["lift_low"],
        "gate/lift_high": gate["lift_high"],
    }
    for name, rows in tables["ope"].items():
        for e in rows:
            for key in ("value", "low", "high", "ess", "max_weight"):
                out[f"ope/{name}/{e['estimator']}/{key}"] = e[key]
    for name, rate in tables["skip_rate_snips"].items():
        out[f"ope/{name}/skip_rate"] = rate
    for name, metrics in tables["ranking"].items():
        out |= {f"rank/{name}/{m}": v for m, v in metrics.items()}
    out |= {f"plan/{k}": v for k, v in tables["plan"].items()}
    truth = tables["truth"]
    if truth:
        for row in truth["ab"]:
            out[f"ab/{row['arm']}/{row['metric']}"] = row["mean"]
            out[f"ab/{row['arm']}/{row['metric']}_low"] = row["low"]
            out[f"ab/{row['arm']}/{row['metric']}_high"] = row["high"]
        for base, rows in truth["lifts"].items():
            for row in rows:
                out[f"ab/lift_vs_{base}/{row['arm']}/{row['metric']}"] = row["estimate"]
                out[f"ab/lift_vs_{base}/{row['arm']}/{row['metric']}_low"] = row["low"]
                out[f"ab/lift_vs_{base}/{row['arm']}/{row['metric']}_high"] = row["high"]
        out |= {f"plan_truth/active_days/{k}": v for k, v in truth.get("plan_active_days", {}).items()}
        for name, value in truth["true_value_per_slot"].items():
            out[f"truth/{name}/value_per_slot"] = value
            for e in tables["ope"].get(name, []):
                out[f"ope_error/{name}/{e['estimator']}"] = e["value"] - value
    return out
