"""Turn GX validation results into plain facts, one-line failure messages and an HTML page.

GX's own Data Docs pull CSS/JS from CDNs (useless offline) and need a file-backed context,
so the report is rendered here: one self-contained page, a summary table, then one
section per table listing every expectation with pass/fail and the observed numbers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from great_expectations.core import ExpectationValidationResult


@dataclass(frozen=True)
class Outcome:
    """One evaluated expectation, reduced to what a person needs to act on it."""

    table: str
    expectation: str
    columns: tuple[str, ...]
    success: bool
    expected: str  # the expectation's parameters in words, e.g. "min 0 exclusive, max 1"
    condition: str = ""  # e.g. "where streamed == True"
    rows: int | None = None  # rows checked (after the condition)
    unexpected: int | None = None  # rows that fail
    observed: str | None = None  # for aggregate expectations (dtype, row count)
    sample: list[Any] = field(default_factory=list)  # a few failing values
    error: str | None = None  # GX could not evaluate the expectation
    why: str = ""

    def line(self) -> str:
        """``impressions: expect_... on 'propensity': 17 of 31620 rows fail (min 0 exclusive, max 1)``."""
        cols = ""
        if len(self.columns) == 1:
            cols = f" on '{self.columns[0]}'"
        elif self.columns:
            cols = f" on ({', '.join(repr(c) for c in self.columns)})"
        cond = f" {self.condition}" if self.condition else ""
        head = f"{self.table}: {self.expectation}{cols}{cond}"
        expected = f" ({self.expected})" if self.expected else ""
        if self.error:
            return f"{head}: could not be evaluated: {self.error}"
        if self.unexpected is not None:
            shown = self.sample[:3] if not self.success else []
            sample = f"; e.g. {', '.join(map(_fmt, shown))}" if shown else ""
            return f"{head}: {self.unexpected} of {self.rows} rows fail{expected}{sample}"
        if self.observed is not None:
            return f"{head}: observed {self.observed}{expected}"
        return f"{head}: {'passed' if self.success else 'failed'}{expected}"


def outcome(table: str, r: ExpectationValidationResult) -> Outcome:
    """Read the parts of a GX result we report; works for map, aggregate and errored results."""
    cfg = r.expectation_config
    assert cfg is not None, "GX always attaches the configuration to a checkpoint result"
    kw, meta, res = dict(cfg.kwargs), dict(cfg.meta or {}), dict(r.result or {})
    columns = _columns(kw)
    unexpected = res.get("unexpected_count")
    observed = res.get("observed_value")
    return Outcome(
        table=table,
        expectation=cfg.type,
        columns=columns,
        success=bool(r.success),
        expected=_expected(kw, meta),
        condition=_condition(kw.get("row_condition")),
        rows=res.get("element_count"),
        unexpected=None if unexpected is None else int(unexpected),
        observed=None if observed is None or unexpected is not None else _fmt(observed),
        sample=_sample(res),
        error=_error(r.exception_info),
        why=str(meta.get("why", "")),
    )


def _sample(res: dict) -> list[Any]:
    """A few failing values; labelled by their index columns (e.g. the day) when GX returned them."""
    index_cols = res.get("unexpected_index_column_names") or []
    labelled = res.get("partial_unexpected_index_list") or []
    values = list(res.get("partial_unexpected_list") or [])
    if index_cols and labelled and all(isinstance(d, dict) for d in labelled):
        keys = [", ".join(_fmt(d.get(c)) for c in index_cols) for d in labelled]
        return [f"{k}: {_fmt(v)}" for k, v in zip(keys, values)]
    return [repr(v) if isinstance(v, str) else v for v in values]


def _columns(kw: dict) -> tuple[str, ...]:
    """The column(s) an expectation is about: one, a list, or a pair (A, B)."""
    if "column_list" in kw:
        return tuple(kw["column_list"])
    if "column_A" in kw:
        return (kw["column_A"], kw["column_B"])
    return (kw["column"],) if "column" in kw else ()


def _expected(kw: dict, meta: dict) -> str:
    """The expectation's parameters in words (sets are named, not listed, when large)."""
    parts: list[str] = []
    if kw.get("min_value") is not None:
        parts.append(f"min {_fmt(kw['min_value'])}{' exclusive' if kw.get('strict_min') else ''}")
    if kw.get("max_value") is not None:
        parts.append(f"max {_fmt(kw['max_value'])}{' exclusive' if kw.get('strict_max') else ''}")
    if "value_set" in kw:
        values = list(kw["value_set"])
        shown = ", ".join(map(_fmt, values)) if len(values) <= 10 else f"{len(values)} values"
        parts.append(f"in {meta['set']}: {shown}" if "set" in meta else f"in {{{shown}}}")
    if kw.get("type_"):
        parts.append(f"expected {kw['type_']}")
    text = ", ".join(parts)
    return f"{text} {meta['detail']}".strip() if meta.get("detail") else text


def _condition(cond: Any) -> str:
    """GX serialises a row condition as a dict; say it as ``where streamed == True``."""
    if not cond:
        return ""
    if isinstance(cond, dict) and cond.get("type") == "comparison":
        return f"where {cond['column']['name']} {cond['operator']} {cond['parameter']}"
    return f"where {cond}"


def _error(info: Any) -> str | None:
    """GX reports exceptions either flat or keyed by the metric that raised; collect the messages."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    messages = [
        str(v["exception_info"].get("exception_message"))
        for v in info.values()
        if isinstance(v, dict) and isinstance(v.get("exception_info"), dict)
    ]
    return "; ".join(dict.fromkeys(messages)) or "unknown error"


def _fmt(x: Any) -> str:
    """Short, stable text for numbers, timestamps and ids."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, datetime):
        return x.isoformat()
    if isinstance(x, np.datetime64):  # pair results come back as numpy values
        return f"{np.datetime_as_string(x, unit='s')}+00:00"
    if isinstance(x, np.generic):
        return _fmt(x.item())
    if isinstance(x, tuple | list):
        return f"({', '.join(map(_fmt, x))})"
    return str(x)


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f2f2f2} td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#176f2c;font-weight:600} .bad{color:#b00020;font-weight:600}
tr.fail td{background:#fdecee} .why{color:#666} code{font-size:.95em}
"""


def render_html(outcomes: list[Outcome], rows: dict[str, int], title: str, notes: list[str]) -> str:
    """A self-contained page: overall status, summary per table, every expectation per table."""
    failed = [o for o in outcomes if not o.success]
    status = "<span class='ok'>PASSED</span>"
    if failed:
        status = f"<span class='bad'>FAILED ({len(failed)})</span>"
    tables = list(dict.fromkeys([*rows, *(o.table for o in outcomes)]))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1><p>Status: {status}</p>",
        *(f"<p>{_e(n)}</p>" for n in notes),
        "<h2>Summary</h2><table><tr><th>table</th><th>rows</th><th>expectations</th><th>failed</th></tr>",
    ]
    for t in tables:
        mine = [o for o in outcomes if o.table == t]
        bad = sum(not o.success for o in mine)
        parts.append(
            f"<tr><td><a href='#{_e(t)}'>{_e(t)}</a></td><td class='n'>{rows.get(t, '')}</td>"
            f"<td class='n'>{len(mine)}</td><td class='n {'bad' if bad else 'ok'}'>{bad}</td></tr>"
        )
    parts.append("</table>")
    for t in tables:
        parts.append(_section(t, [o for o in outcomes if o.table == t]))
    parts.append("</body></html>\n")
    return "".join(parts)


def _section(table: str, outcomes: list[Outcome]) -> str:
    head = (
        f"<h2 id='{_e(table)}'>{_e(table)}</h2><table><tr><th></th><th>expectation</th><th>column(s)</th>"
        "<th>expected</th><th>observed / failing rows</th><th>examples</th><th>why</th></tr>"
    )
    if not outcomes:
        return head + "<tr><td colspan='7'>not evaluated</td></tr></table>"
    body = []
    for o in outcomes:
        mark = "<span class='ok'>&#10003;</span>" if o.success else "<span class='bad'>&#10007;</span>"
        if o.error:
            seen = f"error: {o.error}"
        elif o.unexpected is not None:
            seen = f"{o.unexpected} of {o.rows}"
        else:
            seen = o.observed or ""
        sample = ", ".join(map(_fmt, o.sample[:5])) if not o.success else ""
        body.append(
            f"<tr class='{'pass' if o.success else 'fail'}'><td>{mark}</td>"
            f"<td><code>{_e(o.expectation)}</code></td>"
            f"<td>{_e(', '.join(o.columns))} {_e(o.condition)}</td><td>{_e(o.expected)}</td>"
            f"<td class='n'>{_e(seen)}</td><td>{_e(sample)}</td><td class='why'>{_e(o.why)}</td></tr>"
        )
    return head + "".join(body) + "</table>"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
