"""The raw-log contract: the one definition of the four tables every stage reads.

Everything after ``simulate``/``ingest`` sees only these tables, so real logs that meet
this contract can replace the simulator. Times are UTC (``timestamp[us, tz=UTC]``), ids
are 64-bit integers. The simulator's hidden truth is *not* part of the contract.

A table is stored as ``<raw_dir>/<table>.parquet``. Ingest also accepts a folder of
parquet parts named ``<table>/`` (e.g. a warehouse export) and lays it out as one file.

The log window ``[start, end)`` is declared by a manifest or, for a user's export without
one, inferred from the bulk of the events (:func:`infer_window`); ingest and validate share
that definition, so both refuse the same stray timestamps instead of stretching the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components.errors import ContractError

UTC_TS = pa.timestamp("us", tz="UTC")
PLAY_SOURCES = ("rec", "organic", "search")
STREAM_THRESHOLD_MS = 30_000  # a play counts as a stream at >= 30 s (industry convention)
# Ids are in [0, MAX_ID): a negative id is an export's "unknown" sentinel, and above 2**53 an id
# stops being exact as soon as anything reads it as a float (pandas on a null, JSON in
# JavaScript, a Parquet reader's statistics), so two listeners silently become one.
MAX_ID = 2**53

# ISO 3166-1 alpha-2, every officially assigned code (as in tzdata's iso3166.tab), plus XK
# (Kosovo): user-assigned but what the EU, app stores and streaming services report.
COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA
    ZM ZW
    """.split()
)

# The inferred window (no manifest): the longest run of "dense" days, a dense day holding at
# least WINDOW_MIN_DAY_SHARE of a typical day's events, runs broken by gaps of more than
# WINDOW_MAX_GAP_DAYS days. Part of the contract, not a tuning knob: ingest and validate must
# infer the same window from the same data.
WINDOW_MIN_DAY_SHARE = 0.1
WINDOW_MAX_GAP_DAYS = 7


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


def check_schema(table: Table, schema: pa.Schema, where: Path, rows: int | None = None) -> None:
    """Raise :class:`ContractError` naming the file and column when ``schema`` breaks the contract
    (``rows``, when given, is said too: a wrong type is wrong in every row)."""
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
            raise type_error(table, col, actual, where, rows)


def check_time_zones(table: Table, schema: pa.Schema, where: Path, rows: int | None = None) -> None:
    """Refuse a timestamp column stored in another zone than UTC, or in none.

    pandas and Great Expectations see a ``Timestamp`` in any zone, so this is checked on the
    stored (arrow) type: Berlin time would shift every day boundary, the window and every
    horizon by one or two hours without any other check noticing."""
    for col in table.columns:
        if col.name in schema.names and pa.types.is_timestamp(col.type):
            actual = schema.field(col.name).type
            if pa.types.is_timestamp(actual) and not _compatible(actual, col.type):
                raise type_error(table, col, actual, where, rows)


def type_error(
    table: Table, col: Column, actual: pa.DataType, where: Path, rows: int | None
) -> ContractError:
    """``<file>: table 't', column 'c' has type X (all N rows); the contract needs Y (meaning).``"""
    count = f" (all {rows:,} rows)" if rows is not None else ""
    return ContractError(
        f"{where}: table '{table.name}', column '{col.name}' has type {actual}{count}; "
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
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: the manifest is not valid JSON ({exc}).") from None


# --------------------------------------------------------------------------- the log window


@dataclass(frozen=True)
class Window:
    """The logged period ``[start, end)`` (tz-aware UTC), declared by a manifest or inferred."""

    start: datetime
    end: datetime
    inferred: bool = False

    @property
    def how(self) -> str:
        return "inferred" if self.inferred else "declared"

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def span(self) -> str:
        """``[2026-01-05, 2026-02-09)``; full times when a bound is not a UTC midnight."""
        at_midnight = all(t.time() == datetime.min.time() for t in (self.start, self.end))
        fmt = (lambda t: t.date().isoformat()) if at_midnight else (lambda t: t.isoformat())
        return f"[{fmt(self.start)}, {fmt(self.end)})"

    @classmethod
    def from_manifest(cls, manifest: dict, where: str | Path) -> "Window":
        """The window a manifest declares (``window_start``/``window_end``, ISO 8601 with a zone)."""
        try:
            start = datetime.fromisoformat(manifest["window_start"])
            end = datetime.fromisoformat(manifest["window_end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ContractError(
                f"{where}: manifest needs ISO 8601 window_start/window_end ({exc})."
            ) from None
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise ContractError(
                f"{where}: the manifest's window must carry a time zone (e.g. 2026-01-05T00:00:00+00:00) "
                f"and start before it ends, got {manifest['window_start']} .. {manifest['window_end']}."
            )
        return cls(start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def day_histogram(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Events per UTC day: ``ts`` is ``datetime64`` (any unit, UTC values); returns the sorted
    distinct days (``datetime64[D]``, NaT last) and their counts. numpy floors to the day, so
    pre-1970 times land on the right day, and years beyond Python's datetime are fine."""
    return np.unique(np.asarray(ts).astype("datetime64[D]"), return_counts=True)


def add_histograms(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The sum of several day histograms (e.g. one per batch, or impressions + plays)."""
    if not parts:
        return np.array([], dtype="datetime64[D]"), np.array([], dtype=np.int64)
    days, inverse = np.unique(np.concatenate([d for d, _ in parts]), return_inverse=True)
    return days, np.bincount(inverse.ravel(), weights=np.concatenate([c for _, c in parts])).astype(np.int64)


def infer_window(days: np.ndarray, counts: np.ndarray, where: str | Path) -> Window:
    """The log window of data without a manifest, from its day histogram.

    The first-to-last-event span would let one stray 1970 or 2099 timestamp stretch the window
    over decades, so the window is the bulk of the data instead: days holding at least
    ``WINDOW_MIN_DAY_SHARE`` x the volume a typical event's day has (the event-weighted median,
    which a thousand sparse junk days cannot drag down), grouped into runs broken by gaps of
    more than ``WINDOW_MAX_GAP_DAYS``; the run with the most events is the window, in whole UTC
    days. A short outage stays inside (the daily-volume check names it); whatever lies outside
    is an outlier for the caller to refuse as such.
    """
    known = ~np.isnat(days)
    days, counts = days[known].astype(np.int64), np.asarray(counts)[known]
    if not len(days):
        raise ContractError(f"{where}: no event has a usable timestamp; cannot infer the log window.")
    ranked = np.sort(counts)
    typical = ranked[np.searchsorted(np.cumsum(ranked), ranked.sum() / 2)]
    dense = counts >= WINDOW_MIN_DAY_SHARE * typical
    days, counts = days[dense], counts[dense]
    starts = np.r_[0, np.flatnonzero(np.diff(days) > WINDOW_MAX_GAP_DAYS) + 1]
    best = int(np.argmax(np.add.reduceat(counts, starts)))
    stop = starts[best + 1] if best + 1 < len(starts) else len(days)
    return Window(_utc_day(days[starts[best]], where), _utc_day(days[stop - 1] + 1, where), inferred=True)


def _utc_day(day: int, where: str | Path) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=int(day))
    except OverflowError:
        raise ContractError(
            f"{where}: the bulk of the events lies on {np.datetime64(int(day), 'D')}, outside the years "
            "1-9999: the timestamps are not microseconds since 1970 UTC."
        ) from None


def as_datetime64(t: datetime) -> np.datetime64:
    """A tz-aware datetime as a numpy ``datetime64[us]`` in UTC (numpy has no zones)."""
    return np.datetime64(t.astimezone(timezone.utc).replace(tzinfo=None), "us")


def format_time(t: np.datetime64) -> str:
    """``1970-01-01T00:00:00 UTC``; works for years Python's datetime cannot hold."""
    return f"{np.datetime_as_string(t, unit='s')} UTC"
