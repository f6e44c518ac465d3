"""Ingest real logs: read a folder of contract parquet files and lay it out like ``simulate``.

Each table may be one file (``impressions.parquet``) or a folder of parquet parts
(``impressions/``, e.g. a warehouse export). Columns are checked against the contract
and cast to its exact types; extra columns are dropped. Tables are streamed batch by
batch, so memory stays flat. No truth exists: ``world_dir`` gets a note saying so.

An optional ``manifest.json`` in the logs folder may declare the log window
(``window_start``/``window_end``, ISO 8601 with a zone); otherwise it is inferred from the
bulk of the events (:func:`components.contract.infer_window`), not from the first and last
event, so one stray 1970 timestamp is refused by name instead of stretching the window.
Events outside the window, declared or inferred, are refused with the table, the column and
how many rows; nothing is left in ``raw_dir`` then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from components import contract
from components.errors import ContractError
from components.io import atomic_dir, write_json
from components.params import Params


def _source(logs_dir: Path, name: str) -> Path:
    for candidate in (logs_dir / f"{name}.parquet", logs_dir / name):
        if candidate.exists():
            return candidate
    raise ContractError(
        f"{logs_dir}: table '{name}' not found (expected {name}.parquet or a folder {name}/ of parquet "
        "parts)."
    )


Histogram = tuple[np.ndarray, np.ndarray]  # (UTC days, events per day): contract.day_histogram


def _copy_table(table: contract.Table, src: Path, dst: Path) -> tuple[int, Histogram | None]:
    """Stream ``src`` into ``dst`` with the contract's schema; return the rows and, for event
    tables, the day histogram of ``ts`` (what the window is inferred from)."""
    try:
        dataset = ds.dataset(src, format="parquet")
        total = dataset.count_rows()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{src}: cannot read table '{table.name}' as parquet: {exc}") from None
    contract.check_schema(table, dataset.schema, src, rows=total)
    rows, days = 0, []
    with pq.ParquetWriter(dst, table.schema, compression="zstd") as writer:
        for batch in dataset.to_batches(columns=table.column_names, batch_size=1 << 20):
            try:
                batch = pa.Table.from_batches([batch]).cast(table.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise _value_error(table, dataset, src, exc) from None
            writer.write_table(batch)
            rows += batch.num_rows
            if "ts" in table.column_names and batch.num_rows:
                days.append(contract.day_histogram(batch["ts"].to_numpy()))
    return rows, (contract.add_histograms(days) if "ts" in table.column_names else None)


def _value_error(table: contract.Table, dataset: ds.Dataset, src: Path, exc: Exception) -> ContractError:
    """The values that cannot take the contract's types, counted over the whole table: nulls (no
    contract column may be null) and integers outside the contract's range (e.g. ids >= 2**63 in
    an unsigned column)."""
    problems = []
    for col in table.columns:
        values = dataset.to_table(columns=[col.name])[col.name]
        nulls = values.null_count
        if nulls:
            problems.append(f"column '{col.name}' has {nulls:,} null value(s)")
        if pa.types.is_integer(col.type) and pa.types.is_integer(values.type) and len(values) > nulls:
            info = pc.min_max(values).as_py()
            bits = col.type.bit_width
            lo, hi = (
                (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
                if pa.types.is_signed_integer(col.type)
                else (0, 2**bits - 1)
            )
            bad = 0
            if info["min"] < lo:
                bad += pc.sum(pc.less(values, pa.scalar(lo, values.type))).as_py()
            if info["max"] > hi:
                bad += pc.sum(pc.greater(values, pa.scalar(hi, values.type))).as_py()
            if bad:
                problems.append(f"column '{col.name}' has {bad:,} value(s) outside {col.type} [{lo}, {hi}]")
    detail = "; ".join(problems) or f"its values do not cast to the contract's types ({exc})"
    return ContractError(f"{src}: table '{table.name}' ({dataset.count_rows():,} rows): {detail}.")


def ingest(
    params: Params, logs_dir: Path, raw_dir: Path, world_dir: Path, progress: bool = True
) -> dict[str, float]:
    """Ingest ``logs_dir`` into ``raw_dir``; write the no-truth note into ``world_dir``."""
    logs_dir = Path(logs_dir)
    if not logs_dir.is_dir():
        raise ContractError(f"{logs_dir}: logs folder not found (params: source.logs_dir).")
    counts: dict[str, int] = {}
    days: dict[str, Histogram] = {}
    with atomic_dir(raw_dir) as raw_tmp, atomic_dir(world_dir) as world_tmp:
        for name in tqdm(contract.TABLES, desc="ingest", unit="table", disable=not progress):
            table = contract.TABLES[name]
            counts[name], hist = _copy_table(table, _source(logs_dir, name), table.file(raw_tmp))
            if hist is not None:
                days[name] = hist
        for (
            name,
            table,
        ) in contract.OPTIONAL_TABLES.items():  # e.g. the past experiments, if the user has them
            if (logs_dir / f"{name}.parquet").exists() or (logs_dir / name).exists():
                counts[name] = _copy_table(table, _source(logs_dir, name), table.file(raw_tmp))[0]
        if not any(counts[name] for name in days):
            raise ContractError(f"{logs_dir}: impressions and plays are both empty; nothing to ingest.")
        window = _window(logs_dir, contract.add_histograms(list(days.values())))
        _refuse_outliers(logs_dir, raw_tmp, window, {name: counts[name] for name in days})
        write_json(
            raw_tmp / contract.MANIFEST,
            {
                "source": "logs",
                "logs_dir": str(logs_dir),
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "window": window.how,
                "days": window.days,
                "rows": counts,
            },
        )
        _write_no_truth(world_tmp, logs_dir)
    return {f"ingest/{k}": v for k, v in counts.items()} | {"ingest/days": window.days}


def _window(logs_dir: Path, days: Histogram) -> contract.Window:
    """The window the export's ``manifest.json`` declares, else the one its events imply."""
    declared = logs_dir / contract.MANIFEST
    if declared.exists():
        meta = contract.read_manifest(logs_dir)
        return contract.Window.from_manifest(meta if isinstance(meta, dict) else {}, declared)
    return contract.infer_window(*days, where=logs_dir)


def _refuse_outliers(logs_dir: Path, raw_dir: Path, window: contract.Window, rows: dict[str, int]) -> None:
    """Refuse events outside ``window``, naming table, column, how many rows, the earliest and
    latest: a stray time is a data error to fix, not a reason to stretch the window. Reads back
    only the ``ts`` column of what was written (exact even for a window that is not whole days)."""
    lo, hi = contract.as_datetime64(window.start), contract.as_datetime64(window.end)
    found = []
    for name, total in rows.items():
        n, first, last = 0, None, None
        with pq.ParquetFile(contract.TABLES[name].file(raw_dir)) as written:
            for batch in written.iter_batches(columns=["ts"]):
                ts = batch.column(0).to_numpy()
                out = ts[(ts < lo) | (ts >= hi)]
                if len(out):
                    n += len(out)
                    first = out.min() if first is None else min(first, out.min())
                    last = out.max() if last is None else max(last, out.max())
        if n:
            found.append(
                f"table '{name}', column 'ts': {n:,} of {total:,} rows outside the {window.how} log "
                f"window {window.span()}: earliest {contract.format_time(first)}, "
                f"latest {contract.format_time(last)}"
            )
    if not found:
        return
    how = (
        "inferred from the bulk of the data (the longest run of days each holding at least "
        f"{contract.WINDOW_MIN_DAY_SHARE:.0%} of a typical day's events)"
        if window.inferred
        else f"declared in {logs_dir / contract.MANIFEST}"
    )
    raise ContractError(
        f"{logs_dir}: events outside the log window {window.span()}, {how}:\n"
        + "\n".join(f"  - {line}" for line in found)
        + f"\nFix or drop those rows, or declare the window in {logs_dir / contract.MANIFEST} "
        "(window_start/window_end, ISO 8601 with a zone)."
    )


def _write_no_truth(world_dir: Path, logs_dir: Path) -> None:
    """The truth slot of the DAG gets a note instead of a world (``components.world.has_truth`` is False)."""
    (world_dir / "NO_GROUND_TRUTH.md").write_text(
        f"# No ground truth\n\nThese logs were ingested from `{logs_dir}`, not simulated: no hidden\n"
        "truth exists, so evaluation reports offline estimates and ranking metrics only.\n"
    )
