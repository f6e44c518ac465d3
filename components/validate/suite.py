"""The expectations: what clean raw logs look like, as Great Expectations objects.

Two phases per table. The *schema* phase (row count, column exists, dtype, no nulls) runs
first; the *values* phase (ranges, sets, uniqueness, referential integrity, daily volume)
only runs when every table passed it, because a range check on a mistyped column either
raises or silently compares the wrong thing. ``not null`` sits in the schema phase on
purpose: a null in an integer column turns the pandas dtype into float64, and the user
must hear about the nulls, not only about the dtype.

Every expectation carries ``meta["why"]`` (shown in the report); set-membership checks
also carry ``meta["set"]`` so messages can name the reference instead of listing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.expectations.row_conditions import Column as Col

from components import contract
from components.errors import ContractError
from components.params import ValidateParams

DAILY = "impressions_daily"  # the derived batch: one row per logged day


@dataclass(frozen=True)
class Window:
    """The logged period ``[start, end)`` declared by the manifest (UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def from_manifest(cls, manifest: dict, where: str) -> "Window":
        try:
            start = pd.Timestamp(manifest["window_start"])
            end = pd.Timestamp(manifest["window_end"])
        except (KeyError, ValueError) as exc:
            raise ContractError(f"{where}: manifest needs ISO window_start/window_end ({exc}).") from None
        if start.tz is None or end.tz is None or not start < end:
            raise ContractError(
                f"{where}: manifest window must be tz-aware with start < end, got {start} .. {end}."
            )
        return cls(start.tz_convert("UTC").to_pydatetime(), end.tz_convert("UTC").to_pydatetime())


@dataclass(frozen=True)
class References:
    """Id sets the event tables must point into (referential integrity)."""

    track_ids: list[int]
    user_ids: list[int]
    artist_ids: list[int]

    @classmethod
    def from_frames(cls, tracks: pd.DataFrame, users: pd.DataFrame) -> "References":
        return cls(_ids(tracks["track_id"]), _ids(users["user_id"]), _ids(tracks["artist_id"]))


def _ids(column: pd.Series) -> list[int]:
    """Sorted distinct python ints: GX stores the set in the suite, which must be JSON-able."""
    return np.unique(column.to_numpy()).tolist()


def gx_type(column: contract.Column) -> str:
    """The ``type_`` GX compares a pandas column against, derived from the contract's arrow type.

    numpy dtypes map to their names; strings arrive as ``object`` and GX checks each value
    is a ``str``; tz-aware timestamps arrive as ``datetime64[us, UTC]`` whose scalar type is
    ``Timestamp`` (a naive ``datetime64`` column fails, which is what we want).
    """
    t = column.type
    if pa.types.is_string(t):
        return "str"
    if pa.types.is_timestamp(t):
        return "Timestamp"
    return np.dtype(t.to_pandas_dtype()).name


def schema_suite(table: contract.Table) -> list[gxe.Expectation]:
    """Non-empty, and every contract column present, correctly typed and never null."""
    out: list[gxe.Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta={"why": "an empty table means a broken export"})
    ]
    for col in table.columns:
        why = {"why": f"contract: {col.type} ({col.doc})"}
        out += [
            gxe.ExpectColumnToExist(column=col.name, meta=why),
            gxe.ExpectColumnValuesToBeOfType(column=col.name, type_=gx_type(col), meta=why),
            gxe.ExpectColumnValuesToNotBeNull(column=col.name, meta={"why": "contract columns are required"}),
        ]
    return out


def _between(column: str, why: str, **kw) -> gxe.ExpectColumnValuesToBeBetween:
    return gxe.ExpectColumnValuesToBeBetween(column=column, meta={"why": why}, **kw)


def _in_set(column: str, values: list, set_name: str, why: str) -> gxe.ExpectColumnValuesToBeInSet:
    meta = {"why": why, "set": set_name}
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values, meta=meta)


def _unique_key(table: contract.Table) -> list[gxe.Expectation]:
    """The contract's unique key: one column -> values unique, several -> compound unique."""
    key = list(table.unique_key)
    why = {"why": "contract unique key"}
    if not key:
        return []
    if len(key) == 1:
        return [gxe.ExpectColumnValuesToBeUnique(column=key[0], meta=why)]
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=key, meta=why)]


def _event_checks(vp: ValidateParams, window: Window, refs: References) -> list[gxe.Expectation]:
    """Checks shared by impressions and plays: time inside the window, ids that exist."""
    return [
        _between(
            "ts",
            "events must lie in the logged window [window_start, window_end)",
            min_value=window.start,
            max_value=window.end,
            strict_max=True,
        ),
        _in_set("user_id", refs.user_ids, "users.user_id", "every listener must be in users"),
        _in_set("track_id", refs.track_ids, "tracks.track_id", "every track must be in tracks"),
        _in_set("artist_id", refs.artist_ids, "tracks.artist_id", "every artist must own a track in tracks"),
    ]


def values_suite(name: str, vp: ValidateParams, window: Window, refs: References) -> list[gxe.Expectation]:
    """Ranges, sets, uniqueness and referential integrity of one contract table."""
    table = contract.TABLES[name]
    out = _unique_key(table)
    stream = contract.STREAM_THRESHOLD_MS
    if name == "impressions":
        out += _event_checks(vp, window, refs) + [
            _between(
                "ms_played",
                "cannot be negative; above validate.max_ms_played is a logging bug",
                min_value=0,
                max_value=vp.max_ms_played,
            ),
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["session_id", "position"], meta={"why": "one impression per slate slot"}
            ),
            _between(
                "position",
                "0-based slot, below validate.max_slate_size",
                min_value=0,
                max_value=vp.max_slate_size,
                strict_max=True,
            ),
            _between(
                "propensity",
                "a logged action has positive probability (IPS divides by it)",
                min_value=0,
                max_value=1,
                strict_min=True,
            ),
            _between(
                "ms_played",
                "streamed means played for at least 30 s",
                min_value=stream,
                row_condition=Col("streamed") == True,  # noqa: E712 - a GX condition, not a Python bool
            ),
            _between(
                "ms_played",
                "not streamed means played for less than 30 s",
                max_value=stream,
                strict_max=True,
                row_condition=Col("streamed") == False,  # noqa: E712
            ),
        ]
    elif name == "plays":
        out += _event_checks(vp, window, refs) + [
            _between(
                "ms_played",
                "plays are streams (>= 30 s); above validate.max_ms_played is a bug",
                min_value=stream,
                max_value=vp.max_ms_played,
            ),
            _in_set("source", list(contract.PLAY_SOURCES), "contract.PLAY_SOURCES", "closed vocabulary"),
        ]
    elif name == "users":
        out.append(
            _between(
                "signup_ts",
                "a listener in the log signed up before it ended",
                max_value=window.end,
                strict_max=True,
            )
        )
    elif name == "tracks":
        out += [
            _between("duration_ms", "a track has a positive length", min_value=0, strict_min=True),
            _between(
                "release_ts",
                "a track in the log was released before it ended",
                max_value=window.end,
                strict_max=True,
            ),
        ]
    return out


def daily_suite(vp: ValidateParams, median: float) -> list[gxe.Expectation]:
    """Each day's impression count within [min_ratio, max_ratio] x the median day."""
    lo, hi = vp.daily_volume_min_ratio * median, vp.daily_volume_max_ratio * median
    why = (
        f"each day within [{vp.daily_volume_min_ratio:g}, {vp.daily_volume_max_ratio:g}] x the median day "
        f"({median:g} impressions): an outage or a duplicated export shows up here"
    )
    detail = f"= [{vp.daily_volume_min_ratio:g}, {vp.daily_volume_max_ratio:g}] x median day {median:g}"
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta={"why": "the window spans at least one day"}),
        gxe.ExpectColumnValuesToBeBetween(
            column="impressions", min_value=lo, max_value=hi, meta={"why": why, "detail": detail}
        ),
    ]
