"""Stage ``validate``: run the Great Expectations suite over the raw logs; refuse bad data.

Reads the four contract tables from ``raw_dir`` and the log window from its manifest, or,
for a user's folder without one, infers the window exactly as ingest does. Validates each
table (and two derived batches: impressions per day, listening time per listener-day) with
an ephemeral GX context, writes an HTML report and returns metrics. On any breach it removes
the report and metrics, writes the report as ``<report>.failed.html`` instead, and raises
:class:`DataValidationError` listing each failure (table, expectation, column(s), failing
rows of total).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components import contract
from components.errors import ContractError, DataValidationError
from components.io import atomic_file, remove
from components.params import Params
from components.validate import suite as S
from components.validate.report import Outcome, outcome, render_html

log = logging.getLogger(__name__)
MAX_LINES = 40  # failures listed in the error message; the report has them all


def failed_report_path(report_path: Path) -> Path:
    """Where the report of a failing run goes, beside the normal one (``validation.failed.html``)."""
    return report_path.with_name(f"{report_path.stem}.failed{report_path.suffix}")


def load_table(raw_dir: Path, name: str) -> pd.DataFrame:
    """One contract table as a pandas frame, exactly as stored (dtype problems are GX's to find).

    Missing columns are refused here with the file and column named (``contract.check_schema``
    checks them first); wrong types are *not*, so GX reports them as expectation failures.
    """
    table = contract.TABLES[name]
    path = table.file(raw_dir)
    if not path.exists():
        raise ContractError(f"{path}: table '{name}' not found in {raw_dir}.")
    try:
        schema = pq.read_schema(path)
        if any(c not in schema.names for c in table.column_names):
            contract.check_schema(table, schema, path)  # raises, naming file, table and column(s)
        # a zone pandas and GX cannot see (both take any zone for a Timestamp): checked here
        contract.check_time_zones(table, schema, path, rows=pq.read_metadata(path).num_rows)
        data = pq.read_table(path, columns=table.column_names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{path}: cannot read table '{name}' as parquet: {exc}") from None
    return data.to_pandas(split_blocks=True, self_destruct=True)


def daily_volume(impressions: pd.DataFrame, window: contract.Window) -> pd.DataFrame:
    """Impressions per UTC day over every day of the window (days without any count as 0).

    A missing day is the worst volume breach, so days come from the window (declared, or inferred
    from the bulk of the events), not from the days that happen to have data.
    """
    start = pd.Timestamp(window.start).floor("D")
    end = pd.Timestamp(window.end).ceil("D")
    days = pd.date_range(start, end, freq="D", inclusive="left")
    counts = impressions["ts"].dt.floor("D").value_counts()
    counts.index = counts.index.as_unit("ns")
    per_day = counts.reindex(days.as_unit("ns"), fill_value=0).astype("int64")
    return pd.DataFrame({"day": [d.date().isoformat() for d in days], "impressions": per_day.to_numpy()})


def median_day(daily: pd.DataFrame) -> float:
    """The median impressions of the days that have any (0 if none): empty days must not pull
    the reference down to 0, or a log piled onto one day would pass the volume check."""
    active = daily["impressions"][daily["impressions"] > 0]
    return float(active.median()) if len(active) else 0.0


def listening_per_user_day(plays: pd.DataFrame) -> pd.DataFrame:
    """Total ``ms_played`` per (listener, UTC day of the play's start); days as ISO dates."""
    day = plays["ts"].values.astype("datetime64[D]")  # .values: UTC datetime64, not objects
    total = plays["ms_played"].groupby([plays["user_id"].to_numpy(), day]).sum()
    users, days = total.index.get_level_values(0), total.index.get_level_values(1)
    return pd.DataFrame(
        {
            "user_id": users.to_numpy(),
            "day": np.datetime_as_string(days.to_numpy().astype("datetime64[D]")),
            "ms_played": total.to_numpy(),
        }
    )


def infer_window(frames: dict[str, pd.DataFrame], where: Path) -> contract.Window:
    """The window of a folder without manifest, inferred from impressions and plays as ingest does."""
    parts = [contract.day_histogram(frames[name]["ts"].values) for name in S.EVENT_TABLES]
    return contract.infer_window(*contract.add_histograms(parts), where=where)


class Engine:
    """An ephemeral GX context with one pandas data source; one checkpoint per (table, phase).

    Each table is a dataframe asset with a whole-dataframe batch definition; the frame is
    handed over at run time as ``batch_parameters={"dataframe": df}``.
    """

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.source = self.context.data_sources.add_pandas("encore_raw")
        self._batches: dict[str, Any] = {}

    def _batch_definition(self, table: str) -> Any:
        if table not in self._batches:
            asset = self.source.add_dataframe_asset(table)
            self._batches[table] = asset.add_batch_definition_whole_dataframe(f"{table}_all")
        return self._batches[table]

    def validate(
        self, table: str, phase: str, expectations: list, frame: pd.DataFrame, index: list[str] | None = None
    ) -> list[Outcome]:
        """Run one suite over one frame; return an :class:`Outcome` per expectation.

        ``BASIC`` results (counts + a few failing values) keep big tables cheap; with ``index``
        (derived frames) failing rows are also labelled by those columns, e.g. the day.
        """
        gx, name = self._gx, f"{table}.{phase}"
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        vd = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=self._batch_definition(table), suite=suite)
        )
        fmt: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 5}
        if index:
            fmt.update(result_format="SUMMARY", unexpected_index_column_names=index)
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(name=name, validation_definitions=[vd], result_format=fmt)
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        return [outcome(table, r) for vr in result.run_results.values() for r in vr.results]


def validate_frames(
    params: Params, frames: dict[str, pd.DataFrame], window: contract.Window | None, where: Path
) -> tuple[list[Outcome], list[str], contract.Window | None]:
    """Schema phase on every table; the values phase (and the derived batches) only if all passed.

    Without a declared ``window`` it is inferred once the schema holds (``ts`` must be a time
    first). Adds the derived frames to ``frames`` (``impressions_daily``, ``plays_per_user_day``)
    for report and metrics; returns the outcomes, notes for the report and the window used.
    """
    engine, vp = Engine(), params.validate_
    outcomes: list[Outcome] = []
    for name, table in contract.TABLES.items():
        outcomes += engine.validate(name, "schema", S.schema_suite(table), frames[name])
    if any(not o.success for o in outcomes):
        return outcomes, ["Value checks were not run: the schema checks below failed first."], window
    window = window or infer_window(frames, where)
    refs = S.References.from_frames(frames["tracks"], frames["users"])
    for name in contract.TABLES:
        events = name in S.EVENT_TABLES
        if events:
            refs.attach(frames[name])
        try:
            suite = S.values_suite(name, vp, window, refs)
            outcomes += engine.validate(name, "values", suite, frames[name])
        finally:
            if events:
                refs.detach(frames[name])
    daily = frames[S.DAILY] = daily_volume(frames["impressions"], window)
    median = median_day(daily)
    outcomes += engine.validate(S.DAILY, "values", S.daily_suite(vp, median), daily, index=["day"])
    per_user_day = frames[S.USER_DAY] = listening_per_user_day(frames["plays"])
    outcomes += engine.validate(
        S.USER_DAY, "values", S.user_day_suite(vp), per_user_day, index=["user_id", "day"]
    )
    return outcomes, [f"Median day: {median:g} impressions over {len(daily)} days."], window


def run(
    params: Params,
    raw_dir: Path,
    report_path: Path = Path("reports/validation.html"),
    metrics_path: Path | None = Path("metrics/validate.json"),
) -> dict[str, Any]:
    """Validate ``raw_dir``; write the HTML report and return metrics, or raise naming every breach.

    The window comes from ``manifest.json`` when the folder has one (simulate/ingest write it),
    else it is inferred from the events like ingest infers it."""
    raw_dir, report_path = Path(raw_dir), Path(report_path)
    failed_path = failed_report_path(report_path)
    try:
        manifest = raw_dir / contract.MANIFEST
        window = (
            contract.Window.from_manifest(contract.read_manifest(raw_dir), manifest)
            if manifest.exists()
            else None
        )
        frames = {name: load_table(raw_dir, name) for name in contract.TABLES}
        t0 = time.perf_counter()
        outcomes, notes, window = validate_frames(params, frames, window, raw_dir)
        log.info("validate: %d expectations in %.1f s", len(outcomes), time.perf_counter() - t0)
    except Exception:
        remove(report_path, failed_path, *([metrics_path] if metrics_path else []))  # stale = misleading
        raise
    rows = {name: len(df) for name, df in frames.items()}
    title = f"Encore raw-log validation: {raw_dir}"
    if window is not None:
        source = "inferred from the data: no manifest.json" if window.inferred else "from manifest.json"
        notes = [
            f"Window {window.start.isoformat()} .. {window.end.isoformat()} (end exclusive), {source}.",
            *notes,
        ]
    failures = [o for o in outcomes if not o.success]
    if failures:
        remove(report_path, *([metrics_path] if metrics_path else []))
        _write(failed_path, render_html(outcomes, rows, title + " (FAILED)", notes))
        raise DataValidationError(_message(raw_dir, failures, len(outcomes), failed_path))
    _write(report_path, render_html(outcomes, rows, title, notes))
    remove(failed_path)
    return _metrics(outcomes, frames)


def _message(raw_dir: Path, failures: list[Outcome], total: int, failed_path: Path) -> str:
    lines = [o.line() for o in failures[:MAX_LINES]]
    if len(failures) > MAX_LINES:
        lines.append(f"... and {len(failures) - MAX_LINES} more")
    return (
        f"{raw_dir}: {len(failures)} of {total} data expectations failed (report: {failed_path}):\n"
        + "\n".join(f"  - {line}" for line in lines)
    )


def _metrics(outcomes: list[Outcome], frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Counts only (no timings): reruns on the same data give byte-identical metrics."""
    daily = frames[S.DAILY]["impressions"]
    median = median_day(frames[S.DAILY]) or 1.0
    out: dict[str, Any] = {
        "validate/expectations": len(outcomes),
        "validate/failed": sum(not o.success for o in outcomes),
        "validate/days": int(len(daily)),
        "validate/daily_min_ratio": round(float(daily.min()) / median, 4),
        "validate/daily_max_ratio": round(float(daily.max()) / median, 4),
    }
    out.update({f"validate/rows/{name}": len(frames[name]) for name in contract.TABLES})
    return out


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
