"""The signal scorecard as a page: one table, the learned composite, one scatter per signal."""

from __future__ import annotations

import html

import numpy as np
import polars as pl

from components.figures import inline_png
from components.registry.gate import SLATE_GUARDRAILS as GUARDRAILS
from components.reward.candidates import FIXED_COMPOSITE as FIXED


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _rows(card: dict) -> list[tuple[str, dict]]:
    """Signals, most valid first (Pearson with the active-days effect, oriented)."""
    return sorted(
        card["signals"].items(), key=lambda kv: -np.nan_to_num(kv[1]["active_days/pearson"], nan=-9)
    )


def _scatter(card: dict, arms: pl.DataFrame) -> str:
    """First-week effect of each signal (x) against the arm's effect on active days (y), one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    treated = arms.filter(~pl.col("is_control"))
    names = [n for n, _ in _rows(card)]
    cols = 4
    fig, axes = plt.subplots(
        int(np.ceil(len(names) / cols)), cols, figsize=(14, 3.1 * np.ceil(len(names) / cols))
    )
    y = treated["d_active_days_adj"].to_numpy()
    for ax, name in zip(np.ravel(axes), names):
        row = card["signals"][name]
        x = row["orientation"] * treated[f"d_{name}"].to_numpy()
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.scatter(x, y, s=18)
        for xi, yi, label in zip(x, y, treated["name"].to_list()):
            ax.annotate(label, (xi, yi), fontsize=6, alpha=0.7)
        ax.set_title(f"{name}  r={_fmt(row['active_days/pearson'], 2)}", fontsize=9)
        ax.set_xlabel("first-week effect (oriented)", fontsize=7)
        ax.set_ylabel("effect on active days", fontsize=7)
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    return inline_png(fig, dpi=90)


def render_html(card: dict, weights: dict, arms: pl.DataFrame) -> str:
    parts = ["<h1>Encore signal scorecard</h1>"]
    if not card.get("signals"):
        parts.append(
            f"<p class='note'>{html.escape(card.get('note', 'no experiment library'))} "
            "The pipeline optimises the fixed composite "
            f"({html.escape(weights['active'].get('why', ''))}).</p>"
        )
        return _page(parts)
    parts.append(
        f"<p>{card['arms']} treatment arms; their 28-day active days spread over "
        f"{_fmt(card['outcome_spread'], 2)} days. "
        "A signal is valid at the policy level when an arm's effect on it in the first week predicts its "
        "effect on "
        "the long-term outcome across arms (Pearson/Spearman, the range when any one arm is left out, and "
        "the share "
        "of arms whose signs agree). Users needed: per arm, for the arms' median effect on the signal.</p>"
    )
    head = (
        "<tr><th>signal</th><th>meaning</th><th>Pearson [leave-one-out]</th><th>Spearman</th><th>sign "
        "agreement</th>"
        "<th>vs retention</th><th>users / arm</th><th>lag (days)</th><th>scope</th><th>coverage</th>"
        "<th>weight</th></tr>"
    )
    learned = weights.get("learned", {}).get("columns", {})
    from components.reward.candidates import BY_NAME

    body = []
    for name, r in _rows(card):
        w = learned.get(BY_NAME[name].column) if name in BY_NAME else None
        body.append(
            f"<tr><td>{name}</td><td style='text-align:left'>{html.escape(r['meaning'])}</td>"
            f"<td>{_fmt(r['active_days/pearson'], 2)} [{_fmt(r['active_days/pearson_loo_low'], 2)}, "
            f"{_fmt(r['active_days/pearson_loo_high'], 2)}]</td><td>{_fmt(r['active_days/spearman'], 2)}</td>"
            f"<td>{_fmt(r['active_days/sign_agreement'], 2)}</td><td>{_fmt(r['retained/pearson'], 2)}</td>"
            f"<td>{_fmt(r['users_needed'], 0)}</td><td>{r['lag_days']}</td><td>{r.get('scope', '')}</td>"
            f"<td>{_fmt(r['coverage'], 2)}</td>"
            f"<td>{_fmt(w, 4) if w is not None else ''}</td></tr>"
        )
    parts.append(f"<h2>Scorecard</h2><table>{head}{''.join(body)}</table>")
    loo = weights.get("loo_rmse", {})
    parts.append(
        "<h2>The composite the pipeline optimises</h2>"
        f"<p>Active: <b>{weights['active']['source']}</b> {html.escape(weights['active'].get('why', ''))}. "
        "Leave-one-out error of each way to predict an arm's effect on active days (days, lower is better): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(loo.items(), key=lambda kv: kv[1]))
        + ".</p>"
    )
    g = card["guardrails"]
    parts.append(
        "<h2>Guardrails, validated like signals</h2><p>"
        + ", ".join(f"{name}: Pearson {_fmt(g[name]['pearson'], 2)}" for name in GUARDRAILS if name in g)
        + " (oriented: positive = the guardrail's direction goes with more active days).</p>"
    )
    arm_rows = "".join(
        f"<tr><td>{r['name']}</td><td>{r['users']}</td><td>{_fmt(r['active_days'], 2)}</td>"
        f"<td>{_fmt(r['d_active_days_adj'], 2)} ± {_fmt(1.96 * r['d_active_days_se'], 2)}</td>"
        f"<td>{_fmt(r['d_streamed'], 4)}</td><td>{_fmt(r['d_retained_adj'], 3)}</td></tr>"
        for r in arms.sort("d_active_days_adj").iter_rows(named=True)
    )
    parts.append(
        "<h2>The arms</h2><table><tr><th>arm</th><th>users</th><th>active days</th>"
        "<th>effect (95%)</th><th>effect on stream rate</th><th>effect on retention</th></tr>"
        f"{arm_rows}</table>"
    )
    parts.append(f"<h2>First-week effect vs long-term effect</h2>{_scatter(card, arms)}")
    return _page(parts)


def _page(parts: list[str]) -> str:
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f2f2f2}"
        ".note{background:#fff4d6;padding:8px;border-left:4px solid #e0a800}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Encore "
        f"signals</title><style>{style}</style>"
        f"</head><body>{''.join(parts)}</body></html>"
    )


def render_markdown(card: dict, weights: dict) -> str:
    lines = ["# Encore signal scorecard", ""]
    if not card.get("signals"):
        return "\n".join(lines + [card.get("note", "no experiment library"), ""])
    lines += [
        f"{card['arms']} treatment arms; outcome spread {_fmt(card['outcome_spread'], 2)} active days.",
        "",
        "| signal | Pearson | sign agreement | users/arm | lag |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {_fmt(r['active_days/pearson'], 2)} | {_fmt(r['active_days/sign_agreement'], 2)} | "
        f"{_fmt(r['users_needed'], 0)} | {r['lag_days']} |"
        for n, r in _rows(card)
    ]
    loo = weights.get("loo_rmse", {})
    lines += [
        "",
        f"Composite: **{weights['active']['source']}**; leave-one-out RMSE learned "
        f"{_fmt(loo.get('learned'))}, fixed {_fmt(loo.get(FIXED.split('_')[0]) or loo.get('fixed'))}.",
    ]
    learned = weights.get("learned", {})
    if learned.get("scope"):
        lines.append(
            f"Learned from {learned['scope']}-scope signals ({', '.join(learned['candidates'])}); "
            f"kept: {', '.join(learned['signals']) or 'none'}."
        )
    lines.append("")
    return "\n".join(lines)
