"""Ingest real logs: read a folder of contract parquet files and lay it out like ``simulate``.

Each table may be one file (``impressions.parquet``) or a folder of parquet parts
(``impressions/``, e.g. a warehouse export). Columns are checked against the contract
and cast to its exact types; extra columns are dropped. Tables are streamed batch by
batch, so memory stays flat. No truth exists: ``world_dir`` gets a note saying so.

An optional ``manifest.json`` in the logs folder may declare the log window
(``window_start``/``window_end``, ISO 8601 UTC); otherwise it is taken from the data
(whole UTC days from the first to the last event).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

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


def _copy_table(table: contract.Table, src: Path, dst: Path) -> tuple[int, datetime | None, datetime | None]:
    """Stream ``src`` into ``dst`` with the contract's schema; return rows and min/max ts."""
    try:
        dataset = ds.dataset(src, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise ContractError(f"{src}: cannot read table '{table.name}' as parquet: {exc}") from None
    contract.check_schema(table, dataset.schema, src)
    rows, lo, hi = 0, None, None
    with pq.ParquetWriter(dst, table.schema, compression="zstd") as writer:
        for batch in dataset.to_batches(columns=table.column_names, batch_size=1 << 20):
            try:
                batch = pa.Table.from_batches([batch]).cast(table.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise _value_error(table, dataset, src, exc) from None
            writer.write_table(batch)
            rows += batch.num_rows
            if "ts" in table.column_names and batch.num_rows:
                mm = pc.min_max(batch["ts"]).as_py()
                lo = mm["min"] if lo is None else min(lo, mm["min"])
                hi = mm["max"] if hi is None else max(hi, mm["max"])
    return rows, lo, hi


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
    window: list[datetime] = []
    with atomic_dir(raw_dir) as raw_tmp, atomic_dir(world_dir) as world_tmp:
        for name in tqdm(contract.TABLES, desc="ingest", unit="table", disable=not progress):
            table = contract.TABLES[name]
            rows, lo, hi = _copy_table(table, _source(logs_dir, name), table.file(raw_tmp))
            counts[name] = rows
            if name in ("impressions", "plays") and lo is not None:
                window += [lo, hi]
        for (
            name,
            table,
        ) in contract.OPTIONAL_TABLES.items():  # e.g. the past experiments, if the user has them
            if (logs_dir / f"{name}.parquet").exists() or (logs_dir / name).exists():
                counts[name] = _copy_table(table, _source(logs_dir, name), table.file(raw_tmp))[0]
        if not window:
            raise ContractError(f"{logs_dir}: impressions and plays are both empty; nothing to ingest.")
        start, end = _window(logs_dir, min(window), max(window))
        write_json(
            raw_tmp / contract.MANIFEST,
            {
                "source": "logs",
                "logs_dir": str(logs_dir),
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "days": (end - start).days,
                "rows": counts,
            },
        )
        _write_no_truth(world_tmp, logs_dir)
    return {f"ingest/{k}": v for k, v in counts.items()} | {"ingest/days": (end - start).days}


def _window(logs_dir: Path, first: datetime, last: datetime) -> tuple[datetime, datetime]:
    declared = logs_dir / contract.MANIFEST
    if declared.exists():
        meta = json.loads(declared.read_text())
        try:
            return datetime.fromisoformat(meta["window_start"]), datetime.fromisoformat(meta["window_end"])
        except (KeyError, ValueError) as exc:
            raise ContractError(
                f"{declared}: window_start/window_end must be ISO 8601 times ({exc})."
            ) from None
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    end = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
    return start, end


def _write_no_truth(world_dir: Path, logs_dir: Path) -> None:
    """The truth slot of the DAG gets a note instead of a world (``components.world.has_truth`` is False)."""
    (world_dir / "NO_GROUND_TRUTH.md").write_text(
        f"# No ground truth\n\nThese logs were ingested from `{logs_dir}`, not simulated: no hidden\n"
        "truth exists, so evaluation reports offline estimates and ranking metrics only.\n"
    )
