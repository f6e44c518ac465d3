"""Stage ``evaluate``: how good is each candidate policy, and how far can the offline numbers be trusted?

1. Off-policy estimates (IIPS, RIPS, self-normalised variants, doubly robust) of each
   policy's per-slot composite reward (the signals stage's weights) on held-out logged slates,
   with bootstrap CIs, ESS, largest weight and the clip — plus the logging policy itself.
2. Ranking metrics on held-out listeners' next plays; coverage, diversity, novelty.
3. The gate: the challenger's predicted effect on 28-day active days over the champion (or
   the logging policy) and its validated guardrails (:mod:`components.evaluate.gating`);
   A/B planning on that predicted effect.
4. With the simulator's truth: the simulated A/B test (logging, SFT, click-RL, mid-term-RL,
   the champion if any, both oracles) with CIs, the true per-slot composite of each policy
   (its own A/B logs labelled exactly like the training logs), every estimator's error, and
   whether the gate's decision was right (:mod:`components.evaluate.truth`).
With real logs (no truth) 4 is skipped and the report says so plainly.

Outputs: ``report_dir/evaluation.html`` (plots), ``summary.md``, ``evaluation.json`` (all
tables); the returned metrics go to ``metrics/evaluate.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from components import contract
from components.evaluate import ope
from components.evaluate.arms import policy_arm
from components.evaluate.gating import Calibration, gate_decision, reward_model_validity
from components.evaluate.logged import held_out_slates, kl_to_reference, logged_q, policy_numbers
from components.evaluate.ranking import ranking_metrics
from components.evaluate.rounds import loop_table
from components.evaluate.truth import miscalibrated, reward_model_truth, simulated_truth, verdict
from components.featurestore.lookup import FeatureLookup
from components.io import atomic_dir
from components.params import Params
from components.policy.model import CURVE_CSV
from components.registry import client as registry
from components.registry.gate import write_decision
from components.reward.composite import active_weights
from components.reward.model import RewardModel
from components.tracking import tracking_uri

POLICIES = ("sft", "rlhf_click", "rlhf_midterm")  # candidate names, in the order reports show them
# the returned metrics, also written beside the report (the robustness suite's KFP rows read them)
FLAT_METRICS = "metrics.json"


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
    signals_dir: Path = Path("data/signals"),
    experiments_dir: Path = Path("data/experiments"),
    loop_dir: Path | None = None,
) -> dict[str, float]:
    from components.world import has_truth

    ep, ab = params.evaluate, params.ab
    sample, temperature = ab.lm_decoding == "sample", ab.lm_temperature
    tracks = pl.from_arrow(
        contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id", "duration_ms"])
    )
    lookup = FeatureLookup.from_sources(features_dir, params.features, tracks)
    reward = RewardModel.load(reward_dir).with_lookup(lookup)
    weights, calibration = active_weights(signals_dir), Calibration.read(signals_dir)
    k = params.sft_policy.slate_size

    # 1. off-policy estimates on held-out logged slates
    logged = held_out_slates(params, features_dir, labels_dir, k, ep.max_slates, ep.seed, weights)
    r, mu = logged.matrix("reward"), logged.matrix("propensity")
    q = logged_q(logged, reward)  # DR's correction term, scored as the policies' q_pi are
    numbers = {name: policy_numbers(logged, path, reward, ab, ep.seed) for name, path in policy_dirs.items()}
    estimates = {"logging": ope.estimate(r, mu, mu, q, q, ep.max_weight, ep.n_bootstrap, ep.seed)}
    skip_rate = {"logging": float(logged.matrix("skipped").mean())}
    for name, num in numbers.items():
        estimates[name] = ope.estimate(
            r, num["pi"], mu, q, num["q_pi"], ep.max_weight, ep.n_bootstrap, ep.seed
        )
        skip_rate[name] = snips_skip_rate(logged, num["pi"], mu, params)

    # 2. ranking on held-out listeners
    held = _held_out_sequences(params, raw_dir, features_dir)
    ranking = ranking_metrics(
        policy_dirs, held["sequences"], held["train_plays"], tracks, sample, temperature, ep.seed
    )

    # 3. the gate: the challenger's predicted effect on active days, and its guardrails
    curves = {
        name: pl.read_csv(Path(path) / CURVE_CSV)
        for name, path in policy_dirs.items()
        if name.startswith("rlhf")
    }
    baseline, champion_dir, champion_version = _baseline(params, logged, reward, mu, q)
    kl = kl_to_reference(logged, policy_dirs["rlhf_midterm"], policy_dirs["sft"], ep.seed)
    rm_validity = reward_model_validity(
        reward, signals_dir, experiments_dir, raw_dir, features_dir, params, tracks
    )
    gate = gate_decision(
        params,
        logged,
        q,
        numbers["rlhf_midterm"],
        baseline,
        skip_rate["rlhf_midterm"],
        kl,
        calibration,
        tracks,
        numbers["sft"]["pi"],
        rm_validity,
    )
    gate.champion_version = champion_version
    decision = gate.as_dict()
    plan = _plan(decision, calibration, ep.power, ab.horizon_days)

    # 4. the truth, when there is one: the A/B test, and was the gate right?
    truth: dict = {}
    if has_truth(world_dir):
        extra = {"champion": _served(champion_dir, lookup, params)} if champion_dir is not None else {}
        truth = simulated_truth(
            params, world_dir, raw_dir, labels_dir, policy_dirs, lookup, weights, tracks, extra, progress
        )
        decision["verdict"] = verdict(decision, truth)
        decision["miscalibrated"] = miscalibrated(decision, truth["oracle_guardrails"])
        truth["reward_model"] = reward_model_truth(
            reward,
            world_dir,
            lookup,
            logged.frame["user_id"].to_numpy(),
            logged.frame["track_id"].to_numpy(),
            reward.score_frame(logged.frame),  # the logged pairs as the model saw them: point-in-time
            k,
            ep.truth_listeners,
            ep.seed,
        )
    tables = {
        "ope": {name: [e.as_dict() for e in es] for name, es in estimates.items()},
        "skip_rate_snips": skip_rate,
        "ranking": ranking,
        "plan": plan,
        "truth": truth,
        "logged_slates": logged.n,
        "has_truth": bool(truth),
        "composite": {
            "source": calibration.source,
            "weights": weights,
            "days_per_unit": calibration.days_per_unit,
            "loo_rmse": calibration.loo_rmse,
        },
        "gate": decision,
        "reward_model_validity": rm_validity,
        "loop": loop_table(loop_dir, truth),
    }
    from components.evaluate.report import render_html, render_markdown

    flat = _flat_metrics(tables, policy_dirs)
    with atomic_dir(report_dir) as tmp:
        (tmp / "evaluation.json").write_text(json.dumps(tables, indent=2, default=float))
        (tmp / FLAT_METRICS).write_text(json.dumps(flat, indent=2, default=float))
        (tmp / "summary.md").write_text(render_markdown(tables))
        (tmp / "evaluation.html").write_text(render_html(tables, curves))
        write_decision(tmp, decision)
    return flat


def snips_skip_rate(logged, pi: np.ndarray, mu: np.ndarray, params: Params) -> float:
    """A policy's skip rate per slot, estimated self-normalised on the logged slates."""
    ep = params.evaluate
    est = ope.estimate(logged.matrix("skipped"), pi, mu, None, None, ep.max_weight, ep.n_bootstrap, ep.seed)
    return {e.estimator: e for e in est}["sniips"].value


def _baseline(params: Params, logged, reward: RewardModel, mu: np.ndarray, q: np.ndarray):
    """(name, pi, q_pi) of what the challenger must beat — the registry's champion, or for the first
    model the logging policy — the champion's folder and its version (None, None when there is
    none). The version goes into ``gate.json`` so that ``register`` can refuse if the champion
    moved in between. An unreachable registry is an error, never 'no champion'."""
    ep, ab, rp = params.evaluate, params.ab, params.register_
    c = registry.connect(tracking_uri(params.tracking))
    champion = registry.version_by_alias(c, rp.policy_model, "champion")
    if champion is None:
        return ("logging", mu, q), None, None
    champion_dir = registry.downloaded_policy(c, rp.policy_model, champion.version)
    champ = policy_numbers(logged, champion_dir, reward, ab, ep.seed)
    return ("champion", champ["pi"], champ["q_pi"]), champion_dir, int(champion.version)


def _served(policy_dir: Path, lookup: FeatureLookup, params: Params):
    """A registered policy as an A/B arm, served like the candidates."""
    return policy_arm(policy_dir, lookup, params.ab, policy_id=199, seed=params.evaluate.seed)


def _held_out_sequences(params: Params, raw_dir: Path, features_dir: Path) -> dict:
    from components.policy.sequences import load_sequences, split

    seqs, _, _ = load_sequences(params.sft_policy, raw_dir, features_dir)
    train, test, _ = split(seqs, params.sft_policy)
    n = min(len(test), params.evaluate.ranking_sequences)
    return {"sequences": test.take(np.arange(n)), "train_plays": train.completion.ravel()}


def _plan(decision: dict, calibration: Calibration, power: float, days: int) -> dict:
    """Users per arm an online test needs to confirm the gate's *predicted effect on active days*
    (per-user SD of active days from the library's control arm), not the reward's per-slot lift."""
    effect = decision["lift"]
    sd = calibration.active_days_sd
    users = (
        ope.users_needed(effect, sd, power)
        if decision["unit"] != "composite reward per slot"
        else float("nan")
    )
    return {
        "predicted_effect": effect,
        "unit": decision["unit"],
        "sd_per_user": sd,
        "power": power,
        "users_per_arm": users,
        "days": days,
        "user_days_per_arm": users * days if np.isfinite(users) else float("inf"),
    }


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
    out |= {f"plan/{k}": v for k, v in tables["plan"].items() if not isinstance(v, str)}
    for name, check in gate["guardrails"].items():
        out[f"gate/{name}/value"] = check["value"]
        out[f"gate/{name}/pass"] = float(check["ok"])
        out[f"gate/{name}/enforced"] = float(check["enforced"])
    out |= {f"gate/verdict/{k}": float(v) for k, v in gate.get("verdict", {}).items()}
    out |= {f"gate/miscalibrated/{k}": float(v) for k, v in gate.get("miscalibrated", {}).items()}
    out |= {f"signals/reward_model_score/{k}": v for k, v in tables["reward_model_validity"].items()}
    out |= {
        "composite/learned": float(tables["composite"]["source"] == "learned"),
        "composite/loo_rmse": tables["composite"]["loo_rmse"],
    }
    for row in (tables.get("loop") or {}).get("rounds", []):
        out[f"loop/round_{row['round']}/lift_active_days"] = row["lift_active_days"]
        out[f"loop/round_{row['round']}/lift_low"] = row["lift_low"]
        out[f"loop/round_{row['round']}/lift_high"] = row["lift_high"]
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
        out |= {f"reward_model/truth/{k}": v for k, v in truth["reward_model"].items()}
        out |= {f"ab/{arm}/catalogue_coverage": v for arm, v in truth["catalogue_coverage"].items()}
        for name, value in truth["true_value_per_slot"].items():
            out[f"truth/{name}/value_per_slot"] = value
            for e in tables["ope"].get(name, []):
                out[f"ope_error/{name}/{e['estimator']}"] = e["value"] - value
    return out
