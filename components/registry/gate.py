"""The promotion gate: does the challenger replace the champion?

Pass = the lower bound of the doubly robust lift over the current champion (paired
bootstrap on the same held-out logged slates) is above ``min_lift_lower_bound``, and the
guardrails hold: estimated skip rate, intra-slate genre diversity, the RL policy's KL to its
reference. With no champion yet, the first model must beat the logging policy by
``first_min_value_vs_logging`` (lower bound) — the absolute floor. Every reason is recorded.

``evaluate`` measures and decides (:func:`decide`), writing ``gate.json`` beside its report
(:func:`write_decision`); ``register`` acts on it (:func:`read_decision`). In Kubeflow the
decision also travels as the evaluate task's typed ``promote`` output into the one register
task, which refuses to run if the two disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.errors import EncoreError
from components.params import RegisterParams

GATE_FILE = "gate.json"


@dataclass
class Decision:
    promote: bool
    baseline: str  # "champion" or "logging"
    lift: float
    lift_low: float
    lift_high: float
    reasons: list[str] = field(default_factory=list)
    guardrails: dict[str, dict] = field(default_factory=dict)

    @property
    def gate(self) -> str:
        return "promote" if self.promote else "hold"

    def as_dict(self) -> dict:
        return asdict(self) | {"gate": self.gate}


def decide(
    rp: RegisterParams,
    lift: tuple[float, float, float],
    baseline: str,
    skip_rate: float,
    genre_diversity: float,
    kl: float,
) -> Decision:
    """Apply the gate; ``lift`` = (estimate, low, high) of challenger minus baseline, per slot."""
    floor = rp.min_lift_lower_bound if baseline == "champion" else rp.first_min_value_vs_logging
    est, low, high = lift
    checks = {
        "lift_lower_bound": {
            "value": low,
            "limit": floor,
            "ok": low > floor,
            "why": f"DR lift over the {baseline}: {est:.4f} [{low:.4f}, {high:.4f}] per slot, lower bound "
            f"must exceed {floor}",
        },
        "skip_rate": {
            "value": skip_rate,
            "limit": rp.max_skip_rate,
            "ok": skip_rate <= rp.max_skip_rate,
            "why": f"estimated skip rate {skip_rate:.3f} must be <= {rp.max_skip_rate}",
        },
        "genre_diversity": {
            "value": genre_diversity,
            "limit": rp.min_genre_diversity,
            "ok": genre_diversity >= rp.min_genre_diversity,
            "why": f"genre diversity {genre_diversity:.3f} must be >= {rp.min_genre_diversity}",
        },
        "kl": {
            "value": kl,
            "limit": rp.max_kl,
            "ok": kl <= rp.max_kl,
            "why": f"KL to the SFT reference {kl:.3f} must be <= {rp.max_kl}",
        },
    }
    reasons = [("PASS " if c["ok"] else "FAIL ") + c["why"] for c in checks.values()]
    return Decision(
        promote=all(c["ok"] for c in checks.values()),
        baseline=baseline,
        lift=est,
        lift_low=low,
        lift_high=high,
        reasons=reasons,
        guardrails=checks,
    )


def write_decision(report_dir: Path, decision: Decision) -> None:
    """``gate.json`` in the (temporary) report folder the evaluate stage is writing."""
    (Path(report_dir) / GATE_FILE).write_text(json.dumps(decision.as_dict(), indent=2, default=float))


def read_decision(evaluation_dir: Path) -> dict:
    """The decision evaluate recorded: ``gate`` ('promote' | 'hold'), ``promote``, ``reasons``, ..."""
    path = Path(evaluation_dir) / GATE_FILE
    if not path.exists():
        raise EncoreError(f"{path}: no gate decision; the evaluate stage must run (and succeed) first.")
    return json.loads(path.read_text())
