"""The raw-log contract: the one definition of the four tables every stage reads.

Everything after ``simulate``/``ingest`` sees only these tables, so real logs that meet
this contract can replace the simulator. Times are UTC (``timestamp[us, tz=UTC]``), ids
are 64-bit integers. The simulator's hidden truth is *not* part of the contract.

A table is stored as ``<raw_dir>/<table>.parquet``. Ingest also accepts a folder of
parquet parts named ``<table>/`` (e.g. a warehouse export) and lays it out as one file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.errors import ContractError

UTC_TS = pa.timestamp("us", tz="UTC")
PLAY_SOURCES = ("rec", "organic", "search")
STREAM_THRESHOLD_MS = 30_000  # a play counts as a stream at >= 30 s (industry convention)


@dataclass(frozen=True)
class Column:
    """One contract column: its arrow type and what it means."""

    name: str
    type: pa.DataType
    doc: str


@dataclass(frozen=True)
class Table:
    """One contract table: ordered columns, and the key that must be unique."""

    name: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...]
    doc: str

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=False) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def file(self, raw_dir: Path) -> Path:
        return Path(raw_dir) / f"{self.name}.parquet"


IMPRESSIONS = Table(
    name="impressions",
    doc="One row per recommended track shown in a slate.",
    unique_key=("event_id",),
    columns=(
        Column("event_id", pa.int64(), "unique id of the impression"),
        Column("user_id", pa.int64(), "listener"),
        Column("ts", UTC_TS, "when the slate was shown (UTC)"),
        Column("session_id", pa.int64(), "slate/session id; (session_id, position) is unique"),
        Column("position", pa.int64(), "0-based slot in the slate"),
        Column("track_id", pa.int64(), "recommended track"),
        Column("artist_id", pa.int64(), "artist of the recommended track"),
        Column("policy_id", pa.int64(), "which policy produced the slate"),
        Column(
            "propensity",
            pa.float64(),
            "P(logging policy puts this track in this slot | the slots before it), in (0, 1]",
        ),
        Column("streamed", pa.bool_(), "played for at least 30 s"),
        Column("ms_played", pa.int64(), "milliseconds played (0 when not played)"),
        Column("skipped", pa.bool_(), "started but stopped before 30 s"),
        Column("saved", pa.bool_(), "saved to the library"),
    ),
)

PLAYS = Table(
    name="plays",
    doc="Every stream, recommended or organic.",
    unique_key=(),
    columns=(
        Column("user_id", pa.int64(), "listener"),
        Column("ts", UTC_TS, "when the play started (UTC)"),
        Column("track_id", pa.int64(), "track played"),
        Column("artist_id", pa.int64(), "artist of the track"),
        Column("ms_played", pa.int64(), "milliseconds played (>= 30 000: plays are streams)"),
        Column("source", pa.string(), "rec | organic | search"),
    ),
)

USERS = Table(
    name="users",
    doc="One row per listener.",
    unique_key=("user_id",),
    columns=(
        Column("user_id", pa.int64(), "listener"),
        Column("signup_ts", UTC_TS, "account creation (UTC)"),
        Column("country", pa.string(), "ISO country code"),
        Column("age_bucket", pa.string(), "self-declared age bucket, e.g. 25-34"),
    ),
)

TRACKS = Table(
    name="tracks",
    doc="One row per track in the catalogue.",
    unique_key=("track_id",),
    columns=(
        Column("track_id", pa.int64(), "track"),
        Column("artist_id", pa.int64(), "main artist"),
        Column("genre_id", pa.int64(), "primary genre"),
        Column("duration_ms", pa.int64(), "track length in milliseconds"),
        Column("release_ts", UTC_TS, "release time (UTC)"),
    ),
)

EXPERIMENTS = Table(
    name="experiments",
    doc="Optional: one row per arm of a past A/B test whose impressions are in the logs (the "
    "experiment library). The arm's impressions carry its policy_id; each listener is in one arm.",
    unique_key=("experiment_id", "policy_id"),
    columns=(
        Column("experiment_id", pa.int64(), "the A/B test"),
        Column("policy_id", pa.int64(), "the arm: impressions served by it carry this policy_id"),
        Column("name", pa.string(), "a readable name of the arm"),
        Column("control_policy_id", pa.int64(), "the experiment's control arm (one of its rows)"),
        Column("start", UTC_TS, "first instant of the experiment (UTC)"),
        Column(
            "end", UTC_TS, "end of the experiment, exclusive (UTC): outcomes are measured over [start, end)"
        ),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (IMPRESSIONS, PLAYS, USERS, TRACKS)}
OPTIONAL_TABLES: dict[str, Table] = {EXPERIMENTS.name: EXPERIMENTS}
MANIFEST = "manifest.json"


def check_schema(table: Table, schema: pa.Schema, where: Path) -> None:
    """Raise :class:`ContractError` naming the file and column when ``schema`` breaks the contract."""
    present = set(schema.names)
    missing = [c.name for c in table.columns if c.name not in present]
    if missing:
        raise ContractError(
            f"{where}: table '{table.name}' is missing column(s) {', '.join(missing)}; "
            f"the contract needs {', '.join(table.column_names)}."
        )
    for col in table.columns:
        actual = schema.field(col.name).type
        if not _compatible(actual, col.type):
            raise ContractError(
                f"{where}: table '{table.name}', column '{col.name}' has type {actual}, "
                f"the contract needs {col.type} ({col.doc})."
            )


def _compatible(actual: pa.DataType, wanted: pa.DataType) -> bool:
    """Types that cast losslessly onto the contract type are accepted (e.g. int32 ids)."""
    if actual.equals(wanted):
        return True
    if pa.types.is_integer(wanted):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(wanted):
        return pa.types.is_floating(actual)
    if pa.types.is_string(wanted):
        return (
            pa.types.is_string(actual)
            or pa.types.is_large_string(actual)
            or (pa.types.is_dictionary(actual) and pa.types.is_string(actual.value_type))
        )
    if pa.types.is_timestamp(wanted):
        return pa.types.is_timestamp(actual) and actual.tz in ("UTC", "+00:00", "Etc/UTC")
    return False


def conform(table: Table, data: pa.Table, where: Path) -> pa.Table:
    """Check ``data`` against the contract and return it with exactly the contract's columns and types."""
    check_schema(table, data.schema, where)
    return data.select(table.column_names).cast(table.schema)


def read(raw_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read one contract table from a raw-log folder laid out by simulate/ingest."""
    table = TABLES.get(name) or OPTIONAL_TABLES[name]
    path = table.file(raw_dir)
    if not path.exists():
        raise ContractError(f"{path}: table '{name}' not found in {raw_dir}.")
    check_schema(table, pq.read_schema(path), path)
    return pq.read_table(path, columns=columns)


def read_manifest(raw_dir: Path) -> dict:
    """The manifest simulate/ingest write beside the tables: source, log window, row counts."""
    path = Path(raw_dir) / MANIFEST
    if not path.exists():
        raise ContractError(f"{path}: no manifest; run the simulate/ingest stage first.")
    return json.loads(path.read_text())
