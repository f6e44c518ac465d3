"""The suite's table: per (world, seed), each policy's true lift over the logging policy, what it
served, and whether the gate decided right. Read from each run's ``metrics/evaluate.json``.

Every number is a measured truth number from the world's simulated A/B test (common random
numbers across arms), never an offline proxy, except the gate's own prediction beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

ARMS = {
    "sft": "SFT",
    "rlhf_click": "click-RL",
    "rlhf_midterm_round_0": "mid-term-RL, one round",
    "rlhf_midterm": "mid-term-RL",
    "long_term_oracle": "LT oracle",
}
TABLE_JSON, TABLE_MD, TABLE_PNG = "robustness.json", "robustness.md", "robustness.png"


@dataclass
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def above_zero(self) -> bool:
        return self.low > 0

    def __str__(self) -> str:
        return f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


@dataclass
class RunRow:
    """One (world, seed): its outcome, or why it has none."""

    run: str
    world: str
    seed: int
    mechanism: str
    status: str  # ok | failed
    wall_s: float
    log: str = ""
    logging_active_days: float = math.nan
    lift_vs_logging: dict[str, Interval] = field(default_factory=dict)
    midterm_vs_click: Interval | None = None
    loop_vs_single_round: Interval | None = None  # the loop's final policy vs round 0 (paired)
    distinct_artists: dict[str, float] = field(default_factory=dict)
    catalogue_coverage: dict[str, float] = field(default_factory=dict)
    gate_promoted: bool | None = None
    gate_predicted: Interval | None = None
    gate_right: bool | None = None
    gate_true_lift: float = math.nan  # the truth of what the gate predicted (vs its baseline)
    reward_model_spearman_random: float = math.nan

    @property
    def midterm_beats_logging(self) -> bool:
        lift = self.lift_vs_logging.get("rlhf_midterm")
        return bool(lift and lift.above_zero)

    @property
    def midterm_beats_click(self) -> bool:
        return bool(self.midterm_vs_click and self.midterm_vs_click.above_zero)

    @property
    def loop_beats_single_round(self) -> bool:
        return bool(self.loop_vs_single_round and self.loop_vs_single_round.above_zero)

    @property
    def promoted_a_loser(self) -> bool:
        """The gate promoted mid-term-RL and its true lift over the gate's baseline is negative."""
        return bool(self.gate_promoted and self.gate_true_lift < 0)


def _interval(m: dict, key: str) -> Interval | None:
    if key not in m:
        return None
    return Interval(m[key], m[f"{key}_low"], m[f"{key}_high"])


def row_from_metrics(
    run: str, world: str, seed: int, mechanism: str, wall_s: float, metrics: dict[str, float]
) -> RunRow:
    """A finished run's row from its flat evaluation metrics (``metrics/evaluate.json``)."""
    if not metrics.get("eval/has_truth"):
        raise ValueError(f"run '{run}': its evaluation has no ground truth (was it simulated?)")
    lifts = {arm: iv for arm in ARMS if (iv := _interval(metrics, f"ab/lift_vs_logging/{arm}/active_days"))}
    return RunRow(
        run=run,
        world=world,
        seed=seed,
        mechanism=mechanism,
        status="ok",
        wall_s=wall_s,
        logging_active_days=metrics["ab/logging/active_days"],
        lift_vs_logging=lifts,
        midterm_vs_click=_interval(metrics, "ab/lift_vs_rlhf_click/rlhf_midterm/active_days"),
        loop_vs_single_round=_interval(metrics, "ab/lift_vs_rlhf_midterm_round_0/rlhf_midterm/active_days"),
        distinct_artists={
            arm: metrics[f"ab/{arm}/distinct_artists"]
            for arm in ("logging", *ARMS)
            if f"ab/{arm}/distinct_artists" in metrics
        },
        catalogue_coverage={
            arm: metrics[f"ab/{arm}/catalogue_coverage"]
            for arm in ("logging", *ARMS)
            if f"ab/{arm}/catalogue_coverage" in metrics
        },
        gate_promoted=bool(metrics["gate/promote"]),
        gate_predicted=Interval(metrics["gate/lift"], metrics["gate/lift_low"], metrics["gate/lift_high"]),
        gate_right=bool(metrics["gate/verdict/right"]) if "gate/verdict/right" in metrics else None,
        gate_true_lift=metrics.get("gate/verdict/true_lift", math.nan),
        reward_model_spearman_random=metrics.get("reward_model/truth/random/spearman", math.nan),
    )


def row_from_dict(d: dict) -> RunRow:
    """A row back from ``dataclasses.asdict`` (JSON, a KFP parameter)."""
    d = dict(d)
    d["lift_vs_logging"] = {arm: Interval(**iv) for arm, iv in d.get("lift_vs_logging", {}).items()}
    for key in ("midterm_vs_click", "loop_vs_single_round", "gate_predicted"):
        d[key] = Interval(**d[key]) if d.get(key) else None
    return RunRow(**d)


def summary(rows: list[RunRow]) -> dict[str, float]:
    """What the suite says in a few numbers (finished runs only; failures counted)."""
    ok = [r for r in rows if r.status == "ok"]
    return {
        "runs": len(rows),
        "failed": len(rows) - len(ok),
        "midterm_beats_logging": sum(r.midterm_beats_logging for r in ok),
        "midterm_beats_click": sum(r.midterm_beats_click for r in ok),
        "loop_beats_single_round": sum(r.loop_beats_single_round for r in ok),
        "gate_right": sum(bool(r.gate_right) for r in ok),
        "gate_promoted_a_loser": sum(r.promoted_a_loser for r in ok),
        "wall_s": sum(r.wall_s for r in rows),
    }


def write(rows: list[RunRow], out_dir: Path) -> dict[str, float]:
    """``robustness.json`` (every row, the summary), ``robustness.md`` and ``robustness.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    totals = summary(rows)
    payload = {"summary": totals, "runs": [asdict(r) for r in rows]}
    (out_dir / TABLE_JSON).write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (out_dir / TABLE_MD).write_text(markdown(rows, totals))
    if any(r.status == "ok" for r in rows):
        figure(rows, out_dir / TABLE_PNG)
    return totals


def markdown(rows: list[RunRow], totals: dict[str, float]) -> str:
    lines = [
        "# Encore robustness suite",
        "",
        f"{totals['runs']} runs ({totals['failed']} failed), {totals['wall_s'] / 60:.0f} min in all. "
        "True 28-day active-days lift over the logging policy (95% CI) from each world's simulated "
        "A/B test; the gate's predicted lift and whether its decision was right.",
        "",
        "| world | seed | logging days | SFT | click-RL | mid-term-RL, one round | mid-term-RL "
        "| loop vs one round | mid-term vs click | LT oracle "
        "| distinct artists (logging / mid-term) | coverage (logging / mid-term) "
        "| gate: predicted -> decision "
        "| right? | RM Spearman (random pairs) | min |",
        "|" + "---|" * 16,
    ]
    for r in rows:
        if r.status != "ok":
            lines.append(
                f"| {r.world} | {r.seed} | **{r.status}** ({r.log}) |" + " |" * 12 + f" {r.wall_s / 60:.0f} |"
            )
            continue
        lift = {arm: str(r.lift_vs_logging[arm]) if arm in r.lift_vs_logging else "-" for arm in ARMS}
        decision = "promote" if r.gate_promoted else "hold"
        right = "-" if r.gate_right is None else ("right" if r.gate_right else "**wrong**")
        lines.append(
            f"| {r.world} | {r.seed} | {r.logging_active_days:.2f} | {lift['sft']} | {lift['rlhf_click']} "
            f"| {lift['rlhf_midterm_round_0']} | {lift['rlhf_midterm']} | {r.loop_vs_single_round or '-'} "
            f"| {r.midterm_vs_click or '-'} | {lift['long_term_oracle']} "
            f"| {r.distinct_artists.get('logging', math.nan):.1f} / "
            f"{r.distinct_artists.get('rlhf_midterm', math.nan):.1f} "
            f"| {r.catalogue_coverage.get('logging', math.nan):.1%} / "
            f"{r.catalogue_coverage.get('rlhf_midterm', math.nan):.1%} "
            f"| {r.gate_predicted} -> {decision} | {right} | {r.reward_model_spearman_random:+.2f} "
            f"| {r.wall_s / 60:.0f} |"
        )
    ok = totals["runs"] - totals["failed"]
    lines += [
        "",
        f"- mid-term-RL beats the logging policy (CI above 0) in {totals['midterm_beats_logging']} of "
        f"{ok} runs, click-RL in {totals['midterm_beats_click']} of {ok}; the closed loop's final policy "
        f"beats its own first round (round 0) in {totals['loop_beats_single_round']} of {ok}.",
        f"- The gate was right in {totals['gate_right']} of {ok} runs and promoted a policy whose true "
        f"lift is negative in {totals['gate_promoted_a_loser']}.",
        "",
        "The worlds:",
        "",
    ]
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r.world, r.mechanism)
    lines += [f"- **{w}**: {m}" for w, m in seen.items()]
    return "\n".join(lines) + "\n"


def figure(rows: list[RunRow], path: Path) -> None:
    """Each run's true lifts over logging with CIs, one row of markers per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.status == "ok"]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.8 * len(ok)))
    colours = {
        "sft": "#888888",
        "rlhf_click": "#d95f02",
        "rlhf_midterm_round_0": "#66a61e",
        "rlhf_midterm": "#1b9e77",
        "long_term_oracle": "#7570b3",
    }
    for i, r in enumerate(ok):
        for j, (arm, label) in enumerate(ARMS.items()):
            iv = r.lift_vs_logging.get(arm)
            if iv is None:
                continue
            y = i + (j - (len(ARMS) - 1) / 2) * 0.15
            ax.errorbar(
                iv.estimate,
                y,
                xerr=[[iv.estimate - iv.low], [iv.high - iv.estimate]],
                fmt="o",
                color=colours[arm],
                label=label if i == 0 else None,
                capsize=2,
            )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(ok)), [f"{r.world}, seed {r.seed}\n{_gate_words(r)}" for r in ok])
    ax.invert_yaxis()
    ax.set_xlabel("true 28-day active days vs the logging policy (95% CI)")
    ax.set_title("Robustness suite: does the win hold in every world?")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.25 / len(ok)), ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gate_words(r: RunRow) -> str:
    """'gate: held (right)' and the like, for a row's label."""
    if r.gate_promoted is None:
        return ""
    verdict = "" if r.gate_right is None else (" (right)" if r.gate_right else " (WRONG)")
    return f"gate: {'promoted' if r.gate_promoted else 'held'}{verdict}"
