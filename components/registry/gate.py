"""The promotion gate: does the challenger replace the champion? Decided on the predicted outcome.

The challenger's off-policy estimate of the composite reward — whose weights the signals
stage learned so that an arm's per-slot composite predicts its effect on 28-day active days —
is a *predicted effect on active days* over the champion (or, for the first model, the
logging policy), paired on the same held-out slates. Its interval widens by the composite's
own leave-one-out error on the experiment library: the prediction is only as good as the
surrogate. Promote only if its lower bound clears the floor and every enforced guardrail holds.

Guardrails are validated like signals: a slate guardrail (skip rate, genre diversity, artist
concentration, catalogue coverage) is enforced only when, across the library's arms, moving
in its direction went with more active days; an unvalidated one is reported, not enforced
(with no library, every guardrail is enforced). The KL budget is a training-safety check and
always holds. In simulation evaluation adds, per guardrail, whether it would hold the
long-term oracle (reported as miscalibrated) and whether the decision was right.

``evaluate`` measures and decides (:func:`decide`), writing ``gate.json`` beside its report
(:func:`write_decision`); ``register`` acts on it (:func:`read_decision`). In Kubeflow the
decision also travels as the evaluate task's typed ``promote`` output into the one register
task, which refuses to run if the two disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scipy import stats

from components.errors import EncoreError
from components.params import RegisterParams

GATE_FILE = "gate.json"
# name -> (params field, "min" or "max", what it measures)
SLATE_GUARDRAILS = {
    "skip_rate": ("max_skip_rate", "max", "estimated skip rate per slot"),
    "genre_diversity": ("min_genre_diversity", "min", "distinct genres per slate / k"),
    "artist_concentration": (
        "max_artist_concentration",
        "max",
        "share of a slate from its most frequent artist",
    ),
    "coverage": ("min_catalogue_coverage", "min", "share of the catalogue in the challenger's slates"),
}


@dataclass
class Decision:
    promote: bool
    baseline: str  # "champion" or "logging"
    lift: float  # predicted effect (unit below)
    lift_low: float
    lift_high: float
    unit: str
    reasons: list[str] = field(default_factory=list)
    guardrails: dict[str, dict] = field(default_factory=dict)
    proxy: dict = field(default_factory=dict)  # the per-slot composite lift the prediction came from
    # the champion's registry version the challenger was compared with (None: the logging policy);
    # register refuses to promote if the champion has moved since
    champion_version: int | None = None

    @property
    def gate(self) -> str:
        return "promote" if self.promote else "hold"

    def as_dict(self) -> dict:
        return asdict(self) | {"gate": self.gate}


def predicted_effect(
    lift: tuple[float, float, float], days_per_unit: float, loo_rmse: float, confidence: float = 0.95
) -> tuple[tuple[float, float, float], str]:
    """The per-slot composite lift (estimate, low, high) as an effect on active days, its interval
    widened by the composite's leave-one-out error; unchanged (per-slot units) without a calibration."""
    if not math.isfinite(days_per_unit):
        return lift, "composite reward per slot"
    est, low, high = (x * days_per_unit for x in lift)
    z = stats.norm.ppf(0.5 + confidence / 2) * (loo_rmse if math.isfinite(loo_rmse) else 0.0)
    return (est, est - math.hypot(est - low, z), est + math.hypot(high - est, z)), "28-day active days"


def decide(
    rp: RegisterParams,
    predicted: tuple[float, float, float],
    unit: str,
    baseline: str,
    slate: dict[str, float],
    validity: dict[str, float] | None,
    kl: float,
    proxy: dict | None = None,
    support: float = 1.0,
    reward_model: dict | None = None,
    model_free: tuple[float, float, float] | None = None,
) -> Decision:
    """Apply the gate. ``slate``: the challenger's guardrail values; ``validity``: each guardrail's
    oriented Pearson with the active-days effect across the library's arms (None: no library);
    ``support``: the challenger's effective sample on the logged slots relative to the imitation
    policy's (see :func:`components.evaluate.gating.gate_decision`); ``reward_model``: the reward
    model's score validated as a signal on the library (``pearson``, ``pearson_loo_low``; empty or
    None: no library to validate it on, reported, not enforced); ``model_free``: the same effect
    estimated from the logged outcomes alone (self-normalised IPS, same units and widening; None:
    not measured, reported, not enforced)."""
    floor = rp.min_lift_lower_bound if baseline == "champion" else rp.first_min_value_vs_logging
    est, low, high = predicted
    checks = {
        "predicted_effect": {
            "value": low,
            "limit": floor,
            "ok": low > floor,
            "enforced": True,
            "why": f"predicted effect over the {baseline}: {est:+.3f} [{low:+.3f}, {high:+.3f}] {unit}, "
            f"lower bound must exceed {floor}",
        }
    }
    checks["support"] = {
        "value": support,
        "limit": rp.min_support,
        "ok": support >= rp.min_support,
        "enforced": True,
        "why": f"the challenger's importance weights keep {support:.0%} of the imitation policy's effective "
        f"sample of the logged slots, must be >= {rp.min_support:.0%}: less is an extrapolation of the "
        "reward model RL optimised against",
    }
    checks["reward_model"] = reward_model_check(reward_model, rp.min_reward_model_validity)
    checks["model_free"] = model_free_check(model_free, floor, unit, baseline, rp.require_model_free)
    for name, (param, kind, meaning) in SLATE_GUARDRAILS.items():
        value, limit = slate[name], getattr(rp, param)
        ok = value <= limit if kind == "max" else value >= limit
        v = None if validity is None else validity.get(name)
        enforced = v is None or (math.isfinite(v) and v > 0)
        op = "<=" if kind == "max" else ">="
        note = (
            ""
            if enforced
            else f" (not enforced: across the library's arms it did not protect active days, r={v:+.2f})"
        )
        checks[name] = {
            "value": value,
            "limit": limit,
            "ok": ok,
            "enforced": enforced,
            "validity": v,
            "why": f"{meaning} {value:.3f} must be {op} {limit}{note}",
        }
    checks["kl"] = {
        "value": kl,
        "limit": rp.max_kl,
        "ok": kl <= rp.max_kl,
        "enforced": True,
        "why": f"KL to the SFT reference {kl:.3f} must be <= {rp.max_kl}",
    }
    reasons = [
        ("PASS " if c["ok"] else "FAIL " if c["enforced"] else "INFO ") + c["why"] for c in checks.values()
    ]
    promote = all(c["ok"] for c in checks.values() if c["enforced"])
    return Decision(
        promote=promote,
        baseline=baseline,
        lift=est,
        lift_low=low,
        lift_high=high,
        unit=unit,
        reasons=reasons,
        guardrails=checks,
        proxy=proxy or {},
    )


def model_free_check(
    model_free: tuple[float, float, float] | None, floor: float, unit: str, baseline: str, required: bool
) -> dict:
    """Does the lift show in the logged outcomes themselves? The doubly robust prediction is the
    reward model's own wherever the challenger's slates leave the logs, and a reward model
    trained on the logging policy's neighbourhood can rate a policy's own picks higher than the
    outcomes will (in the robustness suite's first runs it promoted mid-term-RL in every world
    while its true lift was negative). The self-normalised IPS lift uses no model: its lower bound
    must clear the same floor. With a greedy challenger it rests on few logged slots and is wide:
    then the gate holds, and an A/B test (or a stochastic policy whose logs support it) decides."""
    if model_free is None:
        return {
            "value": float("nan"),
            "limit": floor,
            "ok": False,
            "enforced": False,
            "why": "the model-free (self-normalised IPS) lift was not measured",
        }
    est, low, high = model_free
    return {
        "value": low,
        "limit": floor,
        "ok": low > floor,
        "enforced": required,
        "why": f"lift over the {baseline} in the logged outcomes alone (self-normalised IPS, no reward "
        f"model): {est:+.3f} [{low:+.3f}, {high:+.3f}] {unit}, lower bound must exceed {floor}"
        + ("" if required else " (not enforced: register.require_model_free is false)"),
    }


def reward_model_check(validity: dict | None, limit: float) -> dict:
    """The doubly robust estimate is the reward model's prediction wherever the challenger leaves
    the logs' support, so the prediction is only as good as the model's score is as a signal: on
    the library, arms whose slates it scores higher must be the arms with more active days, and
    stay so with any one arm left out. Failing it, the gate asks for an A/B test instead."""
    low = (validity or {}).get("pearson_loo_low", float("nan"))
    if not math.isfinite(low):
        return {
            "value": low,
            "limit": limit,
            "ok": False,  # unknown: reported (INFO), not enforced
            "enforced": False,
            "why": "the reward model's score is not validated (no experiment library with enough arms)",
        }
    r = validity["pearson"]
    return {
        "value": low,
        "limit": limit,
        "ok": low > limit,
        "enforced": True,
        "why": f"the reward model's score vs the library arms' active-days effects: Pearson {r:+.2f}, "
        f"{low:+.2f} with the least favourable arm left out, must exceed {limit}: otherwise the "
        "off-policy prediction rests on a score that does not track the outcome",
    }


def write_decision(report_dir: Path, decision: Decision | dict) -> None:
    """``gate.json`` in the (temporary) report folder the evaluate stage is writing."""
    payload = decision.as_dict() if isinstance(decision, Decision) else decision
    (Path(report_dir) / GATE_FILE).write_text(json.dumps(payload, indent=2, default=float))


def read_decision(evaluation_dir: Path) -> dict:
    """The decision evaluate recorded: ``gate`` ('promote' | 'hold'), ``promote``, ``reasons``, ..."""
    path = Path(evaluation_dir) / GATE_FILE
    if not path.exists():
        raise EncoreError(f"{path}: no gate decision; the evaluate stage must run (and succeed) first.")
    return json.loads(path.read_text())
