"""The validate stage: clean tiny logs pass; each kind of corruption is refused by name.

Every corruption test copies the session's tiny raw logs, breaks one table, plants stale
outputs (report + metrics) and checks that ``core.run`` refuses the data with a message
naming the table, the expectation and the column, and that no complete-looking output is
left behind (only ``<report>.failed.html``).
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

from components.errors import ContractError, DataValidationError
from components.stage import execute
from components.validate.core import failed_report_path, run
from tests.data.corruptions import first, set_rows, with_row_counts

REPO = Path(__file__).resolve().parents[2]
Fix = Callable[[pl.DataFrame], pl.DataFrame]


def corrupt(tiny_raw: Path, dst: Path, table: str, fix: Fix) -> Path:
    """A copy of the tiny logs with ``fix`` applied to one table (the original stays read-only)."""
    raw = dst / "raw"
    shutil.copytree(tiny_raw, raw)
    path = raw / f"{table}.parquet"
    fix(pl.read_parquet(path)).write_parquet(path)
    return raw


def outputs(tmp_path: Path) -> tuple[Path, Path]:
    """Report and metrics paths, pre-filled with stale content a failed run must remove."""
    report, metrics = tmp_path / "reports" / "validation.html", tmp_path / "metrics" / "validate.json"
    for p in (report, metrics):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("stale output of an earlier run")
    return report, metrics


def refused(params, raw: Path, tmp_path: Path, error: type[Exception] = DataValidationError) -> str:
    """Run the stage expecting refusal; check outputs were cleaned; return the message."""
    report, metrics = outputs(tmp_path)
    with pytest.raises(error) as exc:
        run(params, raw, report, metrics)
    assert not report.exists() and not metrics.exists()
    if error is DataValidationError:
        failed = failed_report_path(report)
        assert failed.exists() and "FAILED" in failed.read_text()
    return str(exc.value)


def _outage_on_second_day(df: pl.DataFrame) -> pl.DataFrame:
    """Keep 5% of the impressions of the second logged day (an outage)."""
    day = df["ts"].dt.date().unique().sort()[1]
    on_day = pl.col("ts").dt.date() == day
    return df.filter(~on_day | (pl.int_range(pl.len()).over(on_day) % 20 == 0))


def _duplicate_slot(df: pl.DataFrame) -> pl.DataFrame:
    """Log one slot twice (new event id, same session and position)."""
    extra = df.head(1).with_columns(pl.lit(df["event_id"].max() + 1, dtype=pl.Int64).alias("event_id"))
    return pl.concat([df, extra])


BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
OF_TYPE = "expect_column_values_to_be_of_type"

# name: (table, corruption, expectation, column, regex for the rest of the failure line).
# The failure line must start with "<table>: <expectation> on '<column>'" (see Outcome.line).
CASES: dict[str, tuple[str, Fix, str, str, str]] = {
    "ms_played_float": (
        "impressions",
        lambda d: d.with_columns(pl.col("ms_played").cast(pl.Float64)),
        OF_TYPE,
        "ms_played",
        r": observed float64 \(expected int64\)",
    ),
    "ms_played_string": (
        "plays",
        lambda d: d.with_columns(pl.col("ms_played").cast(pl.String)),
        OF_TYPE,
        "ms_played",
        r": (\d+) of \1 rows fail \(expected int64\)",
    ),
    "null_string": (
        "users",
        lambda d: set_rows(d, first(7), "country", None),
        "expect_column_values_to_not_be_null",
        "country",
        r": 7 of \d+ rows fail",
    ),
    "null_int": (
        "impressions",
        lambda d: set_rows(d, first(5), "track_id", None),
        "expect_column_values_to_not_be_null",
        "track_id",
        r": 5 of \d+ rows fail",
    ),
    "negative_ms_played": (
        "impressions",
        lambda d: set_rows(d, first(3) & ~pl.col("streamed"), "ms_played", -1),
        BETWEEN,
        "ms_played",
        r": \d of \d+ rows fail \(min 0, max 3600000\)",
    ),
    "propensity_zero": (
        "impressions",
        lambda d: set_rows(d, first(17), "propensity", 0.0),
        BETWEEN,
        "propensity",
        r": 17 of \d+ rows fail \(min 0 exclusive, max 1\)",
    ),
    "propensity_above_one": (
        "impressions",
        lambda d: set_rows(d, first(4), "propensity", 1.5),
        BETWEEN,
        "propensity",
        r": 4 of \d+ rows fail \(min 0 exclusive, max 1\); e.g. 1.5",
    ),
    "duplicate_event_id": (
        "impressions",
        lambda d: set_rows(d, pl.int_range(pl.len()) == 1, "event_id", d["event_id"][0]),
        "expect_column_values_to_be_unique",
        "event_id",
        r": 2 of \d+ rows fail",
    ),
    "unknown_track": (
        "plays",
        lambda d: set_rows(d, first(9), "track_id", 10**9),
        IN_SET,
        "track_id",
        r": 9 of \d+ rows fail \(in tracks.track_id: \d+ values\); e.g. 1000000000",
    ),
    "unknown_user": (
        "impressions",
        lambda d: set_rows(d, first(2), "user_id", -5),
        IN_SET,
        "user_id",
        r": 2 of \d+ rows fail \(in users.user_id",
    ),
    "ts_after_window": (
        "plays",
        lambda d: set_rows(d, first(6), "ts", pl.col("ts") + pl.duration(days=60)),
        BETWEEN,
        "ts",
        r": 6 of \d+ rows fail "
        r"\(min 2026-01-05T00:00:00\+00:00, max 2026-\d\d-\d\dT00:00:00\+00:00 exclusive\)",
    ),
    "ts_before_window": (
        "impressions",
        lambda d: set_rows(d, first(1), "ts", pl.col("ts") - pl.duration(days=1)),
        BETWEEN,
        "ts",
        r": 1 of \d+ rows fail",
    ),
    "signup_after_window": (
        "users",
        lambda d: set_rows(d, first(1), "signup_ts", pl.col("signup_ts") + pl.duration(days=3650)),
        BETWEEN,
        "signup_ts",
        r": 1 of \d+ rows fail \(max [\d-]+T00:00:00\+00:00 exclusive\)",
    ),
    "duplicate_slot": (
        "impressions",
        _duplicate_slot,
        "expect_compound_columns_to_be_unique",
        "",
        r" on \('session_id', 'position'\): 2 of \d+ rows fail",
    ),
    "empty_table": (
        "users",
        lambda d: d.head(0),
        "expect_table_row_count_to_be_between",
        "",
        r": observed 0 \(min 1\)",
    ),
    "play_not_a_stream": (
        "plays",
        lambda d: set_rows(d, first(3), "ms_played", 1_000),
        BETWEEN,
        "ms_played",
        r": 3 of \d+ rows fail \(min 30000, max 3600000\)",
    ),
    "unknown_source": (
        "plays",
        lambda d: set_rows(d, first(2), "source", "radio"),
        IN_SET,
        "source",
        r": 2 of \d+ rows fail \(in contract.PLAY_SOURCES: rec, organic, search\); e.g. 'radio'",
    ),
    "streamed_but_short": (
        "impressions",
        lambda d: set_rows(d, pl.col("streamed") & first(500), "ms_played", 5_000),
        BETWEEN,
        "ms_played",
        r" where streamed == True: \d+ of \d+ rows fail \(min 30000\)",
    ),
    "zero_duration": (
        "tracks",
        lambda d: set_rows(d, first(1), "duration_ms", 0),
        BETWEEN,
        "duration_ms",
        r": 1 of \d+ rows fail \(min 0 exclusive\)",
    ),
    "all_on_one_day": (  # the manifest's window stays 35 days: 34 of them are empty
        "impressions",
        lambda d: d.with_columns(
            pl.col("ts").dt.truncate("1d").min() + (pl.col("ts") - pl.col("ts").dt.truncate("1d"))
        ),
        BETWEEN,
        "impressions",
        r": 34 of 35 rows fail \(min [\d.]+, max [\d.]+ = \[0.25, 4\] x median day {impressions}\); "
        r"e.g. 2026-01-06: 0",
    ),
    "daily_volume_outage": (  # reported on the derived batch: impressions per day
        "impressions",
        _outage_on_second_day,
        BETWEEN,
        "impressions",
        r": 1 of \d+ rows fail \(min [\d.]+, max [\d.]+ = \[0.25, 4\] x median day [\d.]+\); "
        r"e.g. [\d-]+-06: \d+",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_corruption_is_refused(case, params, tiny_raw, tmp_path):
    """The message names table, expectation and column, then the failing rows and the bounds."""
    table, fix, expectation, column, rest = CASES[case]
    message = refused(params, corrupt(tiny_raw, tmp_path, table, fix), tmp_path)
    reported = "impressions_daily" if case in ("daily_volume_outage", "all_on_one_day") else table
    head = f"{reported}: {expectation}" + (f" on '{column}'" if column else "")
    assert re.search(re.escape(head) + with_row_counts(rest, tiny_raw), message), message


def test_null_int_column_reports_nulls_and_dtype(params, tiny_raw, tmp_path):
    """Nulls turn an int column into float64 in pandas: both facts are reported, nothing else."""
    raw = corrupt(tiny_raw, tmp_path, "impressions", lambda d: set_rows(d, first(5), "track_id", None))
    message = refused(params, raw, tmp_path)
    assert "impressions: expect_column_values_to_be_of_type on 'track_id': observed float64" in message
    assert message.count("\n  - ") == 2, message  # value checks wait until the schema passes


def test_missing_column_names_file_table_and_column(params, tiny_raw, tmp_path):
    raw = corrupt(tiny_raw, tmp_path, "impressions", lambda d: d.drop("propensity"))
    message = refused(params, raw, tmp_path, ContractError)
    assert "impressions.parquet" in message and "'impressions'" in message and "propensity" in message


@pytest.mark.parametrize(
    ("table", "column", "cast", "shown"),
    [
        (
            "impressions",
            "ts",
            lambda c: c.dt.convert_time_zone("Europe/Berlin"),
            "timestamp[us, tz=Europe/Berlin]",
        ),
        ("users", "signup_ts", lambda c: c.dt.replace_time_zone(None), "timestamp[us]"),
        (
            "tracks",
            "release_ts",
            lambda c: c.dt.convert_time_zone("America/New_York"),
            "timestamp[us, tz=America/New_York]",
        ),
    ],
    ids=["berlin", "naive", "new_york"],
)
def test_non_utc_times_are_refused_by_name(params, tiny_raw, tmp_path, table, column, cast, shown):
    """j. pandas and GX see a Timestamp in any zone; the stored zone must be UTC, or the day
    boundaries, the window and every horizon shift by the offset."""
    raw = corrupt(tiny_raw, tmp_path, table, lambda d: d.with_columns(cast(pl.col(column))))
    message = refused(params, raw, tmp_path, ContractError)
    rows = json.loads((tiny_raw / "manifest.json").read_text())["rows"][table]
    expected = f"{table}.parquet: table '{table}', column '{column}' has type {shown} (all {rows:,} rows)"
    assert expected in message and "the contract needs timestamp[us, tz=UTC]" in message, message


def _without_manifest(tiny_raw: Path, tmp_path: Path, table: str = "plays", fix: Fix = lambda d: d) -> Path:
    raw = corrupt(tiny_raw, tmp_path, table, fix)
    (raw / "manifest.json").unlink()
    return raw


def test_a_folder_without_manifest_is_validated_over_the_inferred_window(params, tiny_raw, tmp_path):
    """i. A user's own folder has no manifest: the window is inferred as ingest infers it."""
    report = tmp_path / "validation.html"
    metrics = run(params, _without_manifest(tiny_raw, tmp_path), report, None)
    assert metrics["validate/failed"] == 0 and metrics["validate/days"] == 35
    assert "Window 2026-01-05T00:00:00+00:00 .. 2026-02-09T00:00:00+00:00 (end exclusive), inferred" in (
        report.read_text()
    )


def test_without_manifest_a_stray_time_is_named_not_absorbed(params, tiny_raw, tmp_path):
    """h + i. One 1970 play is an outlier of the inferred window, not a 56-year window."""
    stray = pl.lit(datetime(1970, 1, 1, tzinfo=timezone.utc)).cast(pl.Datetime("us", "UTC"))
    raw = _without_manifest(tiny_raw, tmp_path, "plays", lambda d: set_rows(d, first(1), "ts", stray))
    message = refused(params, raw, tmp_path)
    assert re.search(
        r"plays: expect_column_values_to_be_between on 'ts': 1 of \d+ rows fail "
        r"\(min 2026-01-05T00:00:00\+00:00, max 2026-02-09T00:00:00\+00:00 exclusive "
        r"= the log window inferred from the data\)",
        message,
    ), message
    assert "impressions_daily" not in message, message


def test_untouched_copy_passes(params, tiny_raw, tmp_path):
    """Control for the corruption helper: a polars round trip alone must not fail validation."""
    raw = corrupt(tiny_raw, tmp_path, "plays", lambda d: d)
    assert run(params, raw, tmp_path / "r.html", None)["validate/failed"] == 0


def test_clean_logs_pass_with_report_and_metrics(params, tiny_raw, tmp_path):
    report, metrics_path = outputs(tmp_path)
    failed = failed_report_path(report)
    failed.write_text("stale failure")
    metrics = execute(
        "validate", ("validate",), params, lambda p: run(p, tiny_raw, report, metrics_path), metrics_path
    )
    manifest = json.loads((tiny_raw / "manifest.json").read_text())
    assert metrics["validate/failed"] == 0 and metrics["validate/expectations"] > 100
    assert metrics["validate/days"] == manifest["days"]
    for table, n in manifest["rows"].items():
        assert metrics[f"validate/rows/{table}"] == n
    assert json.loads(metrics_path.read_text()) == metrics
    page = report.read_text()
    assert "PASSED" in page and "&#10007;" not in page
    for section in ("impressions", "plays", "users", "tracks", "impressions_daily"):
        assert f"id='{section}'" in page
    assert not failed.exists()


def _params_without_tracking(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tracking"]["enabled"] = False  # keep the repo's mlflow.db out of tests
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_exits_2_with_the_breach(tiny_raw, tmp_path):
    raw = corrupt(tiny_raw, tmp_path, "impressions", lambda d: set_rows(d, first(17), "propensity", 0.0))
    report, metrics = outputs(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.validate",
            "--params",
            str(_params_without_tracking(tmp_path)),
            "--raw-dir",
            str(raw),
            "--report",
            str(report),
            "--metrics",
            str(metrics),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error [validate]:"), proc.stderr
    assert "impressions: expect_column_values_to_be_between on 'propensity': 17 of" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not report.exists() and not metrics.exists() and failed_report_path(report).exists()


def test_cli_help_explains_every_option():
    proc = subprocess.run(
        [sys.executable, "-m", "components.validate", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    for option in ("--params", "--raw-dir", "--report", "--metrics"):
        assert option in proc.stdout
