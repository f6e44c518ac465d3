"""The closed loop's rounds in the evaluation: an A/B arm per earlier round, and a round-by-round table.

The loop (``python -m pipelines.loop``) leaves ``<loop_dir>/rounds/round_<r>/policy`` for each round
before the last (round 0 = the RL stage's policy) and ``rounds.json`` with each round's measurements
against the truth. The final round's policy is the challenger (``rlhf_midterm``); the earlier ones
become arms ``rlhf_midterm_round_<r>``, so the simulated A/B test measures every round's true lift
over logging with the same listeners and random numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROUNDS_JSON = "rounds.json"
ARM_PREFIX = "rlhf_midterm_round_"
_ROUND_DIR = re.compile(r"round_(\d+)$")


def round_policy_dir(loop_dir: Path, r: int) -> Path:
    """Where the loop leaves round ``r``'s policy (the writer and :func:`round_policies` agree here)."""
    return Path(loop_dir) / "rounds" / f"round_{r}" / "policy"


def round_policies(loop_dir: Path | None) -> dict[str, Path]:
    """``rlhf_midterm_round_<r>`` -> policy folder, in round order (empty without a loop)."""
    rounds = Path(loop_dir) / "rounds" if loop_dir is not None else None
    if rounds is None or not rounds.is_dir():
        return {}
    found = {int(m.group(1)): d / "policy" for d in rounds.iterdir() if (m := _ROUND_DIR.search(d.name))}
    return {f"{ARM_PREFIX}{r}": found[r] for r in sorted(found)}


def loop_table(loop_dir: Path | None, truth: dict) -> dict:
    """Per round: the true 28-day active-days lift over logging (from this evaluation's A/B test,
    when there is a truth) beside the loop's own measurements (``rounds.json``)."""
    path = Path(loop_dir) / ROUNDS_JSON if loop_dir is not None else None
    if path is None or not path.exists():
        return {}
    loop = json.loads(path.read_text())
    final = int(loop["final_round"])
    lifts = {
        row["arm"]: row
        for row in (truth or {}).get("lifts", {}).get("logging", [])
        if row["metric"] == "active_days"
    }
    rows = []
    for measured in loop["rounds"]:
        r = int(measured["round"])
        arm = "rlhf_midterm" if r == final else f"{ARM_PREFIX}{r}"
        lift = lifts.get(arm, {})
        rows.append(
            {
                "round": r,
                "arm": arm,
                "lift_active_days": lift.get("estimate", float("nan")),
                "lift_low": lift.get("low", float("nan")),
                "lift_high": lift.get("high", float("nan")),
                **{
                    k: measured.get(k, float("nan"))
                    for k in (
                        "truth/value_per_slot",
                        "truth/long_term_value_per_slot",
                        "truth/distinct_artists",
                        "truth/catalogue_coverage",
                        "ope/dr",
                        "ope/dr_relative_error",
                        "ope/iips_relative_error",
                        "ope/sniips_relative_error",
                        "ope/iips_ess_share",
                        "reward_model/random/spearman",
                        "reward_model/logged/spearman",
                        "rl/kl",
                    )
                },
            }
        )
    return {"final_round": final, "rounds": rows}
