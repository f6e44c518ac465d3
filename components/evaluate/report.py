"""The evaluation report: one self-contained HTML page with plots, and a short Markdown summary."""

from __future__ import annotations

import html

import numpy as np
import polars as pl

from components.figures import inline_png

NAMES = {
    "logging": "logging",
    "sft": "SFT",
    "rlhf_click": "click-RL",
    "rlhf_midterm": "mid-term-RL",
    "click_oracle": "click oracle",
    "long_term_oracle": "long-term oracle",
    "popularity": "popularity",
}


def arm_name(arm: str) -> str:
    """A report's name for an arm (the loop's earlier rounds: 'mid-term-RL round r')."""
    if arm.startswith("rlhf_midterm_round_"):
        return f"mid-term-RL round {arm.rsplit('_', 1)[-1]}"
    return NAMES.get(arm, arm)


def _loop_figure(loop: dict):
    """Round by round: the true active-days lift over logging (A/B, 95% CI), the policy's true value
    per slot with its DR estimate from the previous round's logs, the reward model's Spearman."""
    import matplotlib.pyplot as plt

    rows = loop["rounds"]
    r = [row["round"] for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    lift = np.array([row["lift_active_days"] for row in rows])
    err = np.array([lift - [row["lift_low"] for row in rows], [row["lift_high"] for row in rows] - lift])
    axes[0].errorbar(r, lift, yerr=err, fmt="o-", capsize=3, color="#1b9e77")
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel="round", ylabel="true active days vs logging", title="A/B lift per round")
    axes[1].plot(r, [row["truth/value_per_slot"] for row in rows], "o-", color="black", label="truth")
    axes[1].plot(r, [row["ope/dr"] for row in rows], "s--", color="#d95f02", label="DR from the round's logs")
    axes[1].set(xlabel="round", ylabel="composite per slot", title="value per slot")
    axes[1].legend(fontsize=7, frameon=False)
    for key, label in (
        ("reward_model/random/spearman", "random pairs"),
        ("reward_model/logged/spearman", "served"),
    ):
        axes[2].plot(r, [row[key] for row in rows], "o-", label=label)
    axes[2].set(xlabel="round", ylabel="Spearman with the truth", title="reward model")
    axes[2].legend(fontsize=7, frameon=False)
    for ax in axes:
        ax.set_xticks(r)
    fig.tight_layout()
    return fig


def _figures(tables: dict, curves: dict[str, pl.DataFrame]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if (tables.get("loop") or {}).get("rounds"):
        out.append(("The closed loop, round by round", inline_png(_loop_figure(tables["loop"]))))
    truth = tables["truth"]
    if truth:
        rows = [r for r in truth["ab"] if r["metric"] == "active_days"]
        fig, ax = plt.subplots(figsize=(7, 3.6))
        means = np.array([r["mean"] for r in rows])
        err = np.array([[r["mean"] - r["low"] for r in rows], [r["high"] - r["mean"] for r in rows]])
        ax.barh([arm_name(r["arm"]) for r in rows], means, xerr=err, color="tab:blue", alpha=0.75)
        ax.set(
            xlabel=f"true active days over {truth['days']} days (mean, 95% CI)",
            title="Simulated A/B test (ground truth)",
        )
        out.append(("Policies in the simulated A/B test", inline_png(fig)))

        fig, ax = plt.subplots(figsize=(7, 3.6))
        for arm, series in truth["daily_active"].items():
            ax.plot(np.arange(1, len(series) + 1), series, label=arm_name(arm))
        ax.set(xlabel="day of the test", ylabel="share of listeners active", title="Daily activity by arm")
        ax.legend(fontsize=7, ncol=2)
        out.append(("Activity over the test", inline_png(fig)))

    fig, ax = plt.subplots(figsize=(8, 3.8))
    policies = list(tables["ope"])
    est_names = [e["estimator"] for e in tables["ope"][policies[0]]]
    width = 0.8 / len(est_names)
    for i, est in enumerate(est_names):
        vals = [next(e for e in tables["ope"][p] if e["estimator"] == est) for p in policies]
        x = np.arange(len(policies)) + i * width
        ax.errorbar(
            x,
            [v["value"] for v in vals],
            yerr=[[v["value"] - v["low"] for v in vals], [v["high"] - v["value"] for v in vals]],
            fmt="o",
            capsize=3,
            label=est,
        )
    if truth:
        tv = truth["true_value_per_slot"]
        ax.scatter(
            np.arange(len(policies)) + 0.4 - width / 2,
            [tv.get(p, np.nan) for p in policies],
            marker="*",
            s=150,
            color="black",
            label="truth (own A/B logs)",
            zorder=5,
        )
    ax.set_xticks(np.arange(len(policies)) + 0.4 - width / 2, [arm_name(p) for p in policies])
    ax.set(ylabel="reward per slot", title="Off-policy estimates vs truth")
    ax.legend(fontsize=7, ncol=3)
    out.append(("Off-policy estimates" + (" against the truth" if truth else ""), inline_png(fig)))

    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.6), squeeze=False)
        for ax, (name, c) in zip(axes[0], curves.items()):
            ax.plot(c["kl"], c["reward"], ".", ms=3, label="proxy reward (reward model)")
            if c["true_value"].null_count() < c.height:
                ax.plot(c["kl"], c["true_value"], ".", ms=3, label="true long-term value")
            ax.set(xlabel="KL to SFT", ylabel="per slate item", title=f"{arm_name(name)}: reward vs KL")
            ax.legend(fontsize=7)
        out.append(("Over-optimisation watch", inline_png(fig)))
    return out


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(tables: dict, curves: dict[str, pl.DataFrame]) -> str:
    sections = []
    if not tables["has_truth"]:
        sections.append(
            "<p class='note'><b>No ground truth exists for these logs</b> (they were ingested, not "
            "simulated): the report shows offline estimates and ranking metrics only.</p>"
        )
    for title, img in _figures(tables, curves):
        sections.append(f"<h2>{html.escape(title)}</h2>{img}")
    ope_rows = [{"policy": arm_name(p), **e} for p, es in tables["ope"].items() for e in es]
    sections.append(
        "<h2>Off-policy estimates (reward per slot)</h2>"
        + _table(
            ope_rows,
            ["policy", "estimator", "value", "low", "high", "ess", "max_weight", "clipped_share", "clip"],
        )
    )
    if tables["truth"]:
        tv = tables["truth"]["true_value_per_slot"]
        err_rows = [
            {
                "policy": arm_name(p),
                "estimator": e["estimator"],
                "estimate": e["value"],
                "truth": tv[p],
                "error": e["value"] - tv[p],
            }
            for p, es in tables["ope"].items()
            if p in tv
            for e in es
        ]
        sections.append(
            "<h2>Estimator error against the truth</h2>"
            + _table(err_rows, ["policy", "estimator", "estimate", "truth", "error"])
        )
        ab_rows = [
            {"arm": arm_name(r["arm"]), **{k: r[k] for k in ("metric", "mean", "low", "high")}}
            for r in tables["truth"]["ab"]
        ]
        sections.append(
            "<h2>Simulated A/B test</h2>"
            + f"<p>Learned policies served {tables['truth'].get('decoding', 'greedy')}.</p>"
            + _table(ab_rows, ["arm", "metric", "mean", "low", "high"])
        )
    if (tables.get("loop") or {}).get("rounds"):
        sections.append(
            "<h2>The closed loop: each round against the truth</h2>"
            + _table(tables["loop"]["rounds"], list(tables["loop"]["rounds"][0].keys()))
        )
    rank_rows = [{"policy": arm_name(p), **m} for p, m in tables["ranking"].items()]
    sections.append(
        "<h2>Ranking on held-out listeners' next plays</h2>" + _table(rank_rows, list(rank_rows[0].keys()))
    )
    if tables["plan"]:
        p = tables["plan"]
        sections.append(
            f"<h2>A/B planning</h2><p>To confirm the gate's predicted effect of {p['predicted_effect']:+.3f} "
            f"{p['unit']} (mid-term-RL vs the gate's baseline) with {p['power']:.0%} power: "
            f"<b>{p['users_per_arm']:.0f} users per arm</b> for {p['days']} days "
            f"(per-user SD {p['sd_per_user']:.2f}, from the experiment library's control arm).</p>"
        )
        t = (tables["truth"] or {}).get("plan_active_days")
        if t:
            sections.append(
                f"<p>With the truth: mid-term-RL's true lift in {tables['truth']['days']}-day active days "
                "over "
                f"logging is {t['lift']:.3f} days (per-user SD {t['sd_per_user']:.2f}), which needs "
                f"<b>{t['users_per_arm']:.0f} users per arm</b> to detect with {t['power']:.0%} power.</p>"
            )
    sections.append(_gate_section(tables))
    rm = tables.get("reward_model_validity") or {}
    if rm:
        sections.append(
            "<h2>Is the reward model's score a valid signal?</h2><p>Across the experiment library's "
            f"{rm['arms']} arms, each arm's mean reward-model score of its first-week slates (a sample of "
            f"{rm['sampled_per_arm']}) minus its control's, against its effect on active days: Pearson "
            f"{rm['pearson']:+.2f} [leave-one-out {rm['pearson_loo_low']:+.2f}, "
            f"{rm['pearson_loo_high']:+.2f}], "
            f"Spearman {rm['spearman']:+.2f}, sign agreement {rm['sign_agreement']:.2f} "
            "(the other signals: <a href='../signals.html'>signal scorecard</a>).</p>"
        )
    truth_check = (tables["truth"] or {}).get("reward_model")
    if truth_check:
        sections.append(
            "<h2>Does the reward model rank what is truly worth recommending?</h2>"
            f"<p>{_reward_truth_sentence(truth_check)} Off the logs is where RL takes the policy: a "
            "model that ranks only the logging policy's neighbourhood is a reward RL can exploit.</p>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f2f2f2}.note{background:#fff4d6;padding:8px;border-left:4px solid #e0a800}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Encore "
        f"evaluation</title><style>{style}</style></head>"
        f"<body><h1>Encore evaluation</h1><p>{tables['logged_slates']} held-out logged "
        f"slates.</p>{''.join(sections)}</body></html>"
    )


def _reward_truth_sentence(t: dict) -> str:
    """The reward model against the true long-term value of (listener, track) pairs, in words."""
    return (
        "Spearman of the reward model's score with the true long-term value: "
        f"{t['random/spearman']:+.2f} on {t['random/pairs']:.0f} uniformly random (listener, track) "
        f"pairs ({t['random/spearman_within']:+.2f} within a listener), "
        f"{t['logged/spearman']:+.2f} on {t['logged/pairs']:.0f} held-out logged pairs "
        f"({t['logged/spearman_within']:+.2f} within a slate)."
    )


def _gate_section(tables: dict) -> str:
    gate, comp = tables["gate"], tables["composite"]
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in gate["reasons"])
    text = (
        f"<h2>Promotion gate: {html.escape(gate['gate'])}</h2><p>mid-term-RL (the challenger) against the "
        f"{html.escape(gate['baseline'])} policy, on the <b>predicted effect on "
        f"{html.escape(gate['unit'])}</b>: "
        f"the paired DR lift of the {comp['source']} composite "
        f"({gate['proxy'].get('lift_per_slot', float('nan')):+.4f}"
        f" per slot) read in days, its interval widened by the composite's leave-one-out error on the "
        f"experiment library ({comp['loo_rmse']:.3f} days). Guardrails the library does not validate are "
        "reported, not enforced (<a href='../signals.html'>signal scorecard</a>). The register stage applies "
        f"this decision.</p><ul>{reasons}</ul>"
    )
    if gate.get("verdict"):
        v = gate["verdict"]
        right = "right" if v["right"] else "wrong"
        text += (
            f"<p class='note'>Against the truth the decision was <b>{right}</b>: mid-term-RL's true lift "
            "over "
            f"the {html.escape(gate['baseline'])} policy is {v['true_lift']:+.3f} "
            f"[{v['true_lift_low']:+.3f}, {v['true_lift_high']:+.3f}] active days.</p>"
        )
    bad = [k for k, v in gate.get("miscalibrated", {}).items() if v]
    if bad:
        text += f"<p class='note'>Miscalibrated (would hold the long-term oracle): {', '.join(bad)}.</p>"
    return text


def render_markdown(tables: dict) -> str:
    lines = ["# Encore evaluation summary", ""]
    if not tables["has_truth"]:
        lines += [
            "**No ground truth exists for these logs** (ingested, not simulated): offline estimates and "
            "ranking only.",
            "",
        ]
    dr = {p: next(e for e in es if e["estimator"] == "dr") for p, es in tables["ope"].items()}
    lines += ["| policy | DR value per slot (95% CI) | truth |", "|---|---|---|"]
    tv = tables["truth"].get("true_value_per_slot", {}) if tables["truth"] else {}
    for p, e in dr.items():
        lines.append(
            f"| {arm_name(p)} | {e['value']:.4f} [{e['low']:.4f}, {e['high']:.4f}] | "
            f"{tv.get(p, float('nan')):.4f} |"
        )
    if tables["truth"]:
        decoding = tables["truth"].get("decoding", "greedy")
        lines += [
            "",
            f"Learned policies served {decoding}.",
            "",
            "| arm | true active days (95% CI) |",
            "|---|---|",
        ]
        for r in tables["truth"]["ab"]:
            if r["metric"] == "active_days":
                lines.append(f"| {arm_name(r['arm'])} | {r['mean']:.2f} [{r['low']:.2f}, {r['high']:.2f}] |")
    lines += _loop_lines(tables.get("loop") or {})
    if tables["plan"]:
        p = tables["plan"]
        lines += [
            "",
            f"A/B planning: {p['users_per_arm']:.0f} users per arm for {p['days']} days to confirm the "
            "predicted "
            f"effect of {p['predicted_effect']:+.3f} {p['unit']} with {p['power']:.0%} power.",
        ]
        t = (tables["truth"] or {}).get("plan_active_days")
        if t:
            lines.append(
                f"With the truth: the true lift in active days ({t['lift']:.3f}) needs "
                f"{t['users_per_arm']:.0f} users per arm."
            )
    truth_check = (tables["truth"] or {}).get("reward_model")
    if truth_check:
        lines += ["", _reward_truth_sentence(truth_check)]
    gate = tables["gate"]
    lines += [
        "",
        f"**Promotion gate: {gate['gate']}** (mid-term-RL against the {gate['baseline']} policy)",
        "",
    ]
    lines += [f"- {r}" for r in gate["reasons"]]
    if gate.get("verdict"):
        v = gate["verdict"]
        lines += [
            "",
            f"Against the truth the decision was **{'right' if v['right'] else 'wrong'}** "
            f"(true lift {v['true_lift']:+.3f} [{v['true_lift_low']:+.3f}, {v['true_lift_high']:+.3f}] "
            "active days).",
        ]
    return "\n".join(lines) + "\n"


def _loop_lines(loop: dict) -> list[str]:
    """The closed loop's rounds as a Markdown table (nothing without a loop)."""
    if not loop.get("rounds"):
        return []
    lines = [
        "",
        f"Closed loop ({loop['final_round']} rounds; the last is the challenger):",
        "",
        "| round | true lift vs logging, active days (95% CI) | true value / slot | DR (rel. error) | "
        "IIPS ESS share | RM Spearman random / served |",
        "|---|---|---|---|---|---|",
    ]
    for r in loop["rounds"]:
        lines.append(
            f"| {r['round']} | {r['lift_active_days']:+.2f} [{r['lift_low']:+.2f}, {r['lift_high']:+.2f}] | "
            f"{r['truth/value_per_slot']:.4f} | {r['ope/dr']:.4f} ({r['ope/dr_relative_error']:+.1%}) | "
            f"{r['ope/iips_ess_share']:.1%} | {r['reward_model/random/spearman']:.2f} / "
            f"{r['reward_model/logged/spearman']:.2f} |"
        )
    return lines
