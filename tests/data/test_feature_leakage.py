"""Point-in-time correctness: no feature of an impression uses an event at or after its time.

The proof is by truncation: cut the log at time T (drop every impression and play at or
after T), rebuild every feature source and re-join. For every impression at or before T,
the features must be identical to those built from the full log. A feature that peeked
at anything from T onwards would change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from components.features.core import LOG_COLUMNS, build_sources, training_frame
from components.featurestore.definitions import SOURCE_FILES, TRAIN_FRAME, feast_objects
from components.featurestore.store import apply, open_store, repo_config
from components.logs import load_logs

FEATURES = [
    "u_streams_7d",
    "u_active_days_28d",
    "u_skip_rate_28d",
    "u_genre_entropy_28d",
    "t_plays_28d",
    "t_stream_rate_28d",
    "ua_plays",
    "ua_days_played",
    "ua_days_since_last_play",
    "recent_tracks",
]


@pytest.fixture(scope="module")
def full(tiny_features) -> pl.DataFrame:
    return pl.read_parquet(tiny_features / TRAIN_FRAME)


def _frame_from_truncated(tmp_path, raw, params, cutoff) -> pl.DataFrame:
    logs = load_logs(raw, LOG_COLUMNS)
    cut = replace(
        logs,
        impressions=logs.impressions.filter(pl.col("ts") < cutoff),
        plays=logs.plays.filter(pl.col("ts") < cutoff),
    )
    (tmp_path / "sources").mkdir()
    for name, frame in build_sources(cut, params).items():
        frame.write_parquet(tmp_path / "sources" / SOURCE_FILES[name])
    store = open_store(repo_config(params.features, tmp_path / "feast"))
    apply(store, feast_objects(tmp_path / "sources", params.features))
    # the entities are the *full* log's impressions up to and including T
    return training_frame(store, logs.impressions.filter(pl.col("ts") <= cutoff))


@pytest.mark.parametrize("quantile", [0.35, 0.7])
def test_features_ignore_everything_at_or_after_the_impression(tmp_path, tiny_raw, params, full, quantile):
    ts = full["ts"].sort()
    cutoff = ts[int(quantile * (len(ts) - 1))]  # an impression's own timestamp: the strictest cut
    truncated = _frame_from_truncated(tmp_path, tiny_raw, params, cutoff)
    expected = full.filter(pl.col("ts") <= cutoff).select("event_id", *FEATURES).sort("event_id")
    got = truncated.select("event_id", *FEATURES).sort("event_id")
    assert got.height == expected.height > 1000
    assert got["ua_plays"].null_count() < got.height, "the comparison must cover non-null features"
    for col in FEATURES:
        assert got[col].equals(expected[col]), f"{col} changed when the log was cut at {cutoff}: leakage"


def test_features_equal_a_brute_force_recount(tiny_raw, full):
    """Spot-check values against a direct count over the raw plays strictly before the impression's day."""
    plays = pl.read_parquet(tiny_raw / "plays.parquet")
    signup = dict(pl.read_parquet(tiny_raw / "users.parquet").select("user_id", "signup_ts").iter_rows())
    start = full["ts"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    day = lambda c: (pl.col(c) - pl.lit(start)).dt.total_days()  # noqa: E731
    plays = plays.with_columns(day=day("ts"))
    sample = full.with_columns(day=day("ts")).filter(pl.col("day") >= 1).sample(300, seed=1)
    for row in sample.iter_rows(named=True):
        mine = plays.filter(pl.col("user_id") == row["user_id"])
        before = mine.filter(pl.col("day") < row["day"])
        if signup[row["user_id"]] >= start + timedelta(days=row["day"]):
            assert row["u_streams_7d"] is None, "no snapshot can exist before the day after signup"
        else:
            assert row["u_streams_7d"] == before.filter(pl.col("day") >= row["day"] - 7).height
        artist = before.filter(pl.col("artist_id") == row["artist_id"])
        assert row["ua_plays"] == (artist.height or None)
        assert row["ua_days_played"] == (artist["day"].n_unique() or None)
        expected_recent = before.sort("ts")["track_id"].tail(20).to_list()
        assert (row["recent_tracks"] or []) == expected_recent
    # the sample exercised every branch
    assert (
        sample["ua_plays"].null_count() < sample.height
        and sample["recent_tracks"].null_count() < sample.height
    )
