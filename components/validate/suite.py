"""The expectations: what clean raw logs look like, as Great Expectations objects.

Two phases per table. The *schema* phase (row count, column exists, dtype, no nulls) runs
first; the *values* phase (ranges, sets, uniqueness, referential integrity, consistency)
only runs when every table passed it, because a range check on a mistyped column either
raises or silently compares the wrong thing. ``not null`` sits in the schema phase on
purpose: a null in an integer column turns the pandas dtype into float64, and the user
must hear about the nulls, not only about the dtype.

Row-by-row agreement with another table (the track's artist, the listener's signup) is a
GX column-pair expectation over a looked-up column (``tracks.artist_id``, ``users.signup_ts``)
that :meth:`References.attach` adds to the event frame. What no row shows on its own is
checked on derived batches: impressions per day (volume, window length) and listening time
per listener-day (plays exported many times over).

Every expectation carries ``meta["why"]`` (shown in the report); set-membership checks
also carry ``meta["set"]`` so messages can name the reference instead of listing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.expectations.row_conditions import Column as Col

from components import contract
from components.contract import Window
from components.params import ValidateParams

DAILY = "impressions_daily"  # the derived batch: one row per logged day
USER_DAY = "plays_per_user_day"  # the derived batch: one row per (listener, UTC day) with plays
TRACK_ARTIST = "tracks.artist_id"  # looked up per event row: the artist tracks says the track has
USER_SIGNUP = "users.signup_ts"  # looked up per event row: when its listener signed up
DAY_MS = 86_400_000
EVENT_TABLES = ("impressions", "plays")


@dataclass(frozen=True)
class References:
    """What the event tables must agree with: id sets (referential integrity) and the per-track
    artist and per-listener signup they are compared with row by row."""

    track_ids: list[int]
    user_ids: list[int]
    artist_ids: list[int]
    tracks: pd.DataFrame  # track_id, artist_id
    users: pd.DataFrame  # user_id, signup_ts

    @classmethod
    def from_frames(cls, tracks: pd.DataFrame, users: pd.DataFrame) -> "References":
        return cls(
            _ids(tracks["track_id"]),
            _ids(users["user_id"]),
            _ids(tracks["artist_id"]),
            tracks[["track_id", "artist_id"]],
            users[["user_id", "signup_ts"]],
        )

    def attach(self, events: pd.DataFrame) -> None:
        """Add ``tracks.artist_id`` and ``users.signup_ts`` to an event frame, in place (a copy of
        millions of rows would double the memory); missing where the id is unknown, which the
        referential checks report instead. :meth:`detach` removes them again."""
        events[TRACK_ARTIST] = _lookup(events["track_id"], self.tracks["track_id"], self.tracks["artist_id"])
        events[USER_SIGNUP] = _lookup(events["user_id"], self.users["user_id"], self.users["signup_ts"])

    @staticmethod
    def detach(events: pd.DataFrame) -> None:
        events.drop(columns=[TRACK_ARTIST, USER_SIGNUP], inplace=True, errors="ignore")


def _ids(column: pd.Series) -> list[int]:
    """Sorted distinct python ints: GX stores the set in the suite, which must be JSON-able."""
    return np.unique(column.to_numpy()).tolist()


def _lookup(keys: pd.Series, ref_keys: pd.Series, ref_values: pd.Series) -> pd.Series:
    """``ref_values`` at the (first) row of ``ref_keys`` equal to each key, vectorised (a hash
    index, no per-row Python); NA/NaT where the key is absent. Integers stay exact (``Int64``)."""
    first = ~ref_keys.duplicated().to_numpy()
    values = ref_values[first].reset_index(drop=True)
    if pd.api.types.is_integer_dtype(values.dtype):
        values = values.astype("Int64")
    pos = pd.Index(ref_keys.to_numpy()[first]).get_indexer(keys.to_numpy())
    found = pos >= 0
    out = values.take(np.where(found, pos, 0)) if len(values) else values.reindex(range(len(keys)))
    out = out.reset_index(drop=True).where(found)
    out.index = keys.index
    return out


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


def _id_ranges(table: contract.Table) -> list[gxe.Expectation]:
    """Every ``*_id`` column within the contract's id range ``[0, 2**53)``.

    An event's user, track and artist ids must be in users/tracks, whose ids are range-checked
    here, so the referential checks already cover them: no second pass over millions of rows."""
    why = (
        "ids are in [0, 2**53): a negative id is an export's 'unknown' sentinel, and beyond 2**53 "
        "an id is no longer exact once anything reads it as a float (pandas on a null, JSON)"
    )
    referenced = {"user_id", "track_id", "artist_id"} if table.name in EVENT_TABLES else set()
    return [
        _between(c, why, min_value=0, max_value=contract.MAX_ID, strict_max=True)
        for c in table.column_names
        if c.endswith("_id") and c not in referenced
    ]


def _event_checks(window: Window, refs: References) -> list[gxe.Expectation]:
    """Checks shared by impressions and plays: time inside the window and after the listener's
    signup, ids that exist, and the artist the tracks table gives the track."""
    span = {"detail": "= the log window inferred from the data"} if window.inferred else {}
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="ts",
            min_value=window.start,
            max_value=window.end,
            strict_max=True,
            meta={
                "why": "events must lie in the logged window [window_start, window_end)"
                + (
                    " (no manifest.json: inferred from the bulk of the events, as ingest does)"
                    if span
                    else ""
                ),
                **span,
            },
        ),
        _in_set("user_id", refs.user_ids, "users.user_id", "every listener must be in users"),
        _in_set("track_id", refs.track_ids, "tracks.track_id", "every track must be in tracks"),
        _in_set("artist_id", refs.artist_ids, "tracks.artist_id", "every artist must own a track in tracks"),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="artist_id",
            column_B=TRACK_ARTIST,
            ignore_row_if="either_value_is_missing",
            meta={
                "why": "an event's artist is its track's artist in tracks: else per-artist features "
                "and labels credit the wrong artist",
                "detail": f"artist_id == {TRACK_ARTIST} of the row's track_id",
            },
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="ts",
            column_B=USER_SIGNUP,
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta={
                "why": "nobody listens before signing up: an earlier event means a wrong clock, "
                "time zone or user_id",
                "detail": f"ts >= {USER_SIGNUP} of the row's user_id",
            },
        ),
    ]


def _impression_checks(vp: ValidateParams) -> list[gxe.Expectation]:
    """Slots, propensities and outcome flags that agree with ms_played and with each other."""
    stream = contract.STREAM_THRESHOLD_MS
    streamed, skipped = Col("streamed") == True, Col("skipped") == True  # noqa: E712 - GX conditions
    return [
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
            "ms_played", "streamed means played for at least 30 s", min_value=stream, row_condition=streamed
        ),
        _between(
            "ms_played",
            "not streamed means played for less than 30 s",
            max_value=stream,
            strict_max=True,
            row_condition=Col("streamed") == False,  # noqa: E712
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="skipped",
            value_set=[False],
            row_condition=streamed,
            meta={"why": "skipped (stopped before 30 s) and streamed (30 s or more) contradict each other"},
        ),
        _between(
            "ms_played",
            "skipped means stopped before 30 s",
            max_value=stream,
            strict_max=True,
            row_condition=skipped,
        ),
    ]


def values_suite(name: str, vp: ValidateParams, window: Window, refs: References) -> list[gxe.Expectation]:
    """Ranges, sets, uniqueness, referential integrity and consistency of one contract table.

    Event tables must carry the reference columns of :meth:`References.attach`."""
    table = contract.TABLES[name]
    out = _unique_key(table) + _id_ranges(table)
    if name == "impressions":
        out += _event_checks(window, refs) + _impression_checks(vp)
    elif name == "plays":
        out += _event_checks(window, refs) + [
            _between(
                "ms_played",
                "plays are streams (>= 30 s); above validate.max_ms_played is a bug",
                min_value=contract.STREAM_THRESHOLD_MS,
                max_value=vp.max_ms_played,
            ),
            _in_set("source", list(contract.PLAY_SOURCES), "contract.PLAY_SOURCES", "closed vocabulary"),
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=table.column_names,
                meta={
                    "why": "two plays alike in every column (listener, microsecond, track, length, "
                    "source) are one play exported twice"
                },
            ),
        ]
    elif name == "users":
        out += [
            _between(
                "signup_ts",
                "a listener in the log signed up before it ended",
                max_value=window.end,
                strict_max=True,
            ),
            _in_set(
                "country",
                sorted(contract.COUNTRY_CODES),
                "ISO 3166-1 alpha-2",
                "two upper-case letters assigned by ISO 3166-1 (GB, not UK): per-country features "
                "and splits need one code per country",
            ),
        ]
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
    """At least ``validate.min_days`` days, each with [min_ratio, max_ratio] x the median day's
    impressions; the median is over days *with* impressions, so a log piled onto one day (the
    median of all days would be 0, and 0 would pass) leaves every other day failing by name."""
    lo, hi = vp.daily_volume_min_ratio * median, vp.daily_volume_max_ratio * median
    why = (
        f"each day within [{vp.daily_volume_min_ratio:g}, {vp.daily_volume_max_ratio:g}] x the median day "
        f"with impressions ({median:g}): an outage or a duplicated export shows up here"
    )
    detail = f"= [{vp.daily_volume_min_ratio:g}, {vp.daily_volume_max_ratio:g}] x median day {median:g}"
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=vp.min_days,
            meta={
                "why": "the window must hold a history and a label horizon: a shorter log (or one "
                "piled onto a few days) cannot be split in time",
                "detail": "days: validate.min_days",
            },
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="impressions", min_value=lo, max_value=hi, meta={"why": why, "detail": detail}
        ),
    ]


def user_day_suite(vp: ValidateParams) -> list[gxe.Expectation]:
    """A listener streams at most 24 h a day: more means plays exported several times over."""
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="ms_played",
            max_value=DAY_MS + vp.max_ms_played,
            meta={
                "why": "the plays a listener starts on one UTC day last at most 24 h plus the last "
                "play: more is a duplicated or replayed export (a physical bound, no tuning)",
                "detail": "= 24 h a day + validate.max_ms_played",
            },
        )
    ]
