"""Bring-your-own-logs: corrupted copies of valid logs go through ingest -> validate, as a user's
export would, and each is refused by name (table, column, failing rows of total), never accepted.

Every case copies the tiny world's four tables into a logs folder *without* a manifest (a
user's export has none), breaks one table, then runs ingest and, if ingest accepts it,
validate. The refusal must be an :class:`EncoreError` whose message matches the case's
pattern, and no complete-looking output may be left behind: a failed ingest leaves no raw
folder, a failed validate leaves only ``validation.failed.html``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
import yaml

from components import contract
from components.errors import ContractError, DataValidationError, EncoreError
from components.raw_logs.ingest import ingest
from components.validate.core import failed_report_path
from components.validate.core import run as validate
from tests.data.corruptions import first, set_rows, with_row_counts

REPO = Path(__file__).resolve().parents[2]
Fix = Callable[[pl.DataFrame], pl.DataFrame]
START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # the tiny world's first logged day (params.yaml)


def user_logs(tiny_raw: Path, dst: Path, table: str | None = None, fix: Fix | None = None) -> Path:
    """The tiny world's tables as a user's export (no manifest), with ``fix`` applied to ``table``."""
    logs = dst / "export"
    logs.mkdir(parents=True)
    for name in contract.TABLES:
        shutil.copy(contract.TABLES[name].file(tiny_raw), logs / f"{name}.parquet")
    if table and fix:
        path = logs / f"{table}.parquet"
        fix(pl.read_parquet(path)).write_parquet(path)
    return logs


def ingest_then_validate(params, logs: Path, tmp_path: Path) -> dict:
    """What a user runs: ingest the export, then validate what ingest laid out."""
    raw = tmp_path / "raw"
    ingest(params, logs, raw, tmp_path / "world", progress=False)
    return validate(params, raw, tmp_path / "reports" / "validation.html", tmp_path / "validate.json")


def refused(params, logs: Path, tmp_path: Path) -> str:
    """Run ingest -> validate expecting a named refusal; check nothing complete is left; return it."""
    with pytest.raises(EncoreError) as exc:
        ingest_then_validate(params, logs, tmp_path)
    assert isinstance(exc.value, ContractError | DataValidationError), type(exc.value)
    report = tmp_path / "reports" / "validation.html"
    assert not report.exists() and not (tmp_path / "validate.json").exists()
    if isinstance(exc.value, DataValidationError):
        assert failed_report_path(report).exists()
    elif not (tmp_path / "raw" / contract.MANIFEST).exists():  # ingest refused: no raw folder at all
        assert not (tmp_path / "raw").exists()
    return str(exc.value)


def _at(when: str) -> pl.Expr:
    return pl.lit(datetime.fromisoformat(when)).cast(pl.Datetime("us", "UTC"))


def _other_artist(df: pl.DataFrame) -> pl.DataFrame:
    """Five rows credit the track to the next artist id (one that exists, so only the pair breaks)."""
    n_artists = df["artist_id"].max() + 1
    return set_rows(df, first(5), "artist_id", (pl.col("artist_id") + 1) % n_artists)


def _late_signup(df: pl.DataFrame) -> pl.DataFrame:
    """Three listeners 'sign up' an hour before the log ends: their earlier events precede signup."""
    return set_rows(df, first(3), "signup_ts", _at("2026-02-08T23:00:00+00:00"))


def _one_day(df: pl.DataFrame) -> pl.DataFrame:
    """Every event moved onto the first logged day, keeping its time of day."""
    return df.with_columns((pl.lit(START) + (pl.col("ts") - pl.col("ts").dt.truncate("1d"))).alias("ts"))


def _duplicated(times: int) -> Fix:
    """Every play exported ``times`` times (identical rows)."""
    return lambda df: pl.concat([df] * times)


def _garbage_countries(df: pl.DataFrame) -> pl.DataFrame:
    """Six listeners with codes that are not ISO 3166-1 alpha-2 ('UK' is not; the code is GB)."""
    bad = ["ZZ", "", "usa", "??", "se", "UK"]
    return df.with_columns(pl.Series("country", bad + df["country"].to_list()[len(bad) :]))


def _burst(df: pl.DataFrame) -> pl.DataFrame:
    """One listener-day's plays logged 1000 times each, a microsecond apart (not identical rows)."""
    first = df.row(0, named=True)
    head = df.filter((pl.col("user_id") == first["user_id"]) & (pl.col("ts").dt.date() == first["ts"].date()))
    copies = pl.concat(
        [head.with_columns(pl.col("ts") + pl.duration(microseconds=i + 1)) for i in range(1000)]
    )
    return pl.concat([df, copies])


PAIR_EQ = "expect_column_pair_values_to_be_equal"
PAIR_GT = "expect_column_pair_values_a_to_be_greater_than_b"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
MAX_ID = r"\(min 0, max 9007199254740992 exclusive\)"

# name: (table to corrupt, corruption, regexes the refusal must all match)
CASES: dict[str, tuple[str, Fix, list[str]]] = {
    # a. the artist of a track must be the one the tracks table says
    "artist_disagrees_impressions": (
        "impressions",
        _other_artist,
        [rf"impressions: {PAIR_EQ} on \('artist_id', 'tracks.artist_id'\): 5 of \d+ rows fail"],
    ),
    "artist_disagrees_plays": (
        "plays",
        _other_artist,
        [rf"plays: {PAIR_EQ} on \('artist_id', 'tracks.artist_id'\): 5 of \d+ rows fail"],
    ),
    # b. nobody listens before signing up
    "events_before_signup": (
        "users",
        _late_signup,
        [
            rf"impressions: {PAIR_GT} on \('ts', 'users.signup_ts'\): \d+ of \d+ rows fail",
            rf"plays: {PAIR_GT} on \('ts', 'users.signup_ts'\): \d+ of \d+ rows fail",
        ],
    ),
    # c. contradictory outcome flags
    "streamed_and_skipped": (
        "impressions",
        lambda d: set_rows(d, pl.col("streamed") & first(400), "skipped", True),
        [
            rf"impressions: {IN_SET} on 'skipped' where streamed == True: "
            r"\d+ of \d+ rows fail \(in \{False\}\)"
        ],
    ),
    "skipped_but_long": (
        "impressions",
        lambda d: set_rows(d, pl.col("skipped") & first(400), "ms_played", 45_000),
        [
            rf"impressions: {BETWEEN} on 'ms_played' where skipped == True: "
            r"\d+ of \d+ rows fail \(max 30000 exclusive\)"
        ],
    ),
    # d. ids in the declared range
    "negative_session_id": (
        "impressions",
        lambda d: set_rows(d, first(10), "session_id", -1),
        [rf"impressions: {BETWEEN} on 'session_id': 10 of \d+ rows fail {MAX_ID}"],
    ),
    "event_id_near_2_63": (
        "impressions",
        lambda d: set_rows(d, first(3), "event_id", 2**63 - 1 - pl.int_range(pl.len(), dtype=pl.Int64)),
        [rf"impressions: {BETWEEN} on 'event_id': 3 of \d+ rows fail {MAX_ID}"],
    ),
    "genre_id_negative": (
        "tracks",
        lambda d: set_rows(d, first(2), "genre_id", -7),
        [rf"tracks: {BETWEEN} on 'genre_id': 2 of 300 rows fail {MAX_ID}"],
    ),
    # e. country codes from ISO 3166-1 alpha-2
    "garbage_country": (
        "users",
        _garbage_countries,
        [rf"users: {IN_SET} on 'country': 6 of 400 rows fail \(in ISO 3166-1 alpha-2: \d+ values\)"],
    ),
    # f. plays exported more than once
    "plays_duplicated": (
        "plays",
        _duplicated(3),
        [
            r"plays: expect_compound_columns_to_be_unique on \('user_id', 'ts', 'track_id', 'artist_id', "
            r"'ms_played', 'source'\): (\d+) of \1 rows fail"
        ],
    ),
    "plays_burst": (
        "plays",
        _burst,
        [
            rf"plays_per_user_day: {BETWEEN} on 'ms_played': 1 of \d+ rows fail "
            r"\(max 90000000 = 24 h a day \+ validate.max_ms_played\); e.g. 3, 2026-01-05: \d+"
        ],
    ),
    # g. everything on one day
    "all_on_one_day_impressions": (
        "impressions",
        _one_day,
        [
            r"table 'plays', column 'ts': [\d,]+ of [\d,]+ rows outside the inferred log window "
            r"\[2026-01-05, 2026-01-06\)"
        ],
    ),
    # h. a stray timestamp is an outlier, not a reason to stretch the window
    "stray_1970": (
        "impressions",
        lambda d: set_rows(d, first(1), "ts", _at("1970-01-01T00:00:00+00:00")),
        [
            r"table 'impressions', column 'ts': 1 of {impressions:,} rows outside the inferred log window "
            r"\[2026-01-05, 2026-02-09\): earliest 1970-01-01"
        ],
    ),
    "stray_2099": (
        "plays",
        lambda d: set_rows(d, first(2), "ts", _at("2099-12-31T12:00:00+00:00")),
        [r"table 'plays', column 'ts': 2 of [\d,]+ rows outside the inferred log window .*latest 2099-12-31"],
    ),
    # k. a timestamp Python's datetime cannot hold used to escape as a traceback
    "ts_in_year_148108": (
        "plays",
        lambda d: set_rows(d, first(1), "ts", pl.lit(2**62).cast(pl.Datetime("us", "UTC"))),
        [r"table 'plays', column 'ts': 1 of [\d,]+ rows outside the inferred log window .*latest 148108-"],
    ),
    # j. times must be UTC
    "berlin_time": (
        "impressions",
        lambda d: d.with_columns(pl.col("ts").dt.convert_time_zone("Europe/Berlin")),
        [
            r"impressions\.parquet: table 'impressions', column 'ts' has type "
            r"timestamp\[us, tz=Europe/Berlin\] \(all {impressions:,} rows\); "
            r"the contract needs timestamp\[us, tz=UTC\]"
        ],
    ),
    "naive_time": (
        "users",
        lambda d: d.with_columns(pl.col("signup_ts").dt.replace_time_zone(None)),
        [r"users\.parquet: table 'users', column 'signup_ts' has type timestamp\[us\] \(all 400 rows\)"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_export_is_refused_by_name(case, params, tiny_raw, tmp_path):
    table, fix, patterns = CASES[case]
    message = refused(params, user_logs(tiny_raw, tmp_path, table, fix), tmp_path)
    for pattern in patterns:
        pattern = with_row_counts(pattern, tiny_raw)
        assert re.search(pattern, message), f"{pattern!r} not in:\n{message}"


def test_all_on_one_day_is_refused_by_the_window_length(params, tiny_raw, tmp_path):
    """g. Both event tables on one day: the window is that day, too short for any label horizon."""
    logs = user_logs(tiny_raw, tmp_path, "impressions", _one_day)
    _one_day(pl.read_parquet(logs / "plays.parquet")).write_parquet(logs / "plays.parquet")
    message = refused(params, logs, tmp_path)
    assert re.search(
        r"impressions_daily: expect_table_row_count_to_be_between: "
        r"observed 1 \(min 14 days: validate.min_days\)",
        message,
    ), message


def test_a_clean_export_passes(params, tiny_raw, tmp_path):
    """Control: the uncorrupted export is accepted and the inferred window is the simulated one."""
    metrics = ingest_then_validate(params, user_logs(tiny_raw, tmp_path), tmp_path)
    assert metrics["validate/failed"] == 0
    manifest = contract.read_manifest(tmp_path / "raw")
    simulated = contract.read_manifest(tiny_raw)
    assert (manifest["window_start"], manifest["window_end"]) == (
        simulated["window_start"],
        simulated["window_end"],
    )


def test_a_declared_window_refuses_events_outside_it(params, tiny_raw, tmp_path):
    """h. With a manifest in the export, events outside its window are named as such by ingest."""
    logs = user_logs(tiny_raw, tmp_path)
    (logs / contract.MANIFEST).write_text(
        json.dumps({"window_start": "2026-01-06T00:00:00+00:00", "window_end": "2026-02-09T00:00:00+00:00"})
    )
    message = refused(params, logs, tmp_path)
    pattern = with_row_counts(
        r"table 'impressions', column 'ts': [\d,]+ of {impressions:,} rows outside the declared log window "
        r"\[2026-01-06, 2026-02-09\): earliest 2026-01-05",
        tiny_raw,
    )
    assert re.search(pattern, message), message


def test_a_naive_declared_window_is_refused(params, tiny_raw, tmp_path):
    logs = user_logs(tiny_raw, tmp_path)
    (logs / contract.MANIFEST).write_text(
        json.dumps({"window_start": "2026-01-05T00:00:00", "window_end": "2026-02-09T00:00:00"})
    )
    message = refused(params, logs, tmp_path)
    assert "manifest.json" in message and "time zone" in message, message


def test_ingest_cli_prints_no_traceback_for_bad_data(params, tiny_raw, tmp_path):
    """k. A timestamp beyond Python's datetime used to crash ingest with a traceback."""
    fix = CASES["ts_in_year_148108"][1]
    logs = user_logs(tiny_raw, tmp_path, "plays", fix)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tracking"]["enabled"] = False
    raw["source"] = {"kind": "logs", "logs_dir": str(logs)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.raw_logs",
            "--params",
            str(tmp_path / "params.yaml"),
            "--raw-dir",
            str(tmp_path / "raw"),
            "--world-dir",
            str(tmp_path / "world"),
            "--metrics",
            str(tmp_path / "simulate.json"),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "table 'plays', column 'ts': 1 of" in proc.stderr
    assert not (tmp_path / "raw").exists()
