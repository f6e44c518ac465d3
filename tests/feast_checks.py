"""One check shared by the Feast integration tests (embedded-on-Redis and cluster-shaped)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from components.featurestore.definitions import SOURCE_FILES
from components.featurestore.store import online


def latest_per_entity(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort("event_timestamp").group_by(keys).last()


def assert_online_equals_latest_offline(store, features_out: Path) -> None:
    """What the online store serves equals the latest offline value per entity (50 users and
    50 user x artist pairs), including the request-relative ``ua_days_since_last_play``."""
    activity = pl.read_parquet(features_out / "sources" / SOURCE_FILES["user_activity"])
    end = activity["event_timestamp"].max()
    latest = (
        latest_per_entity(activity, ["user_id"])
        .filter(pl.col("event_timestamp") == end)
        .sort("user_id")
        .head(50)
    )
    pairs = latest_per_entity(
        pl.read_parquet(features_out / "sources" / SOURCE_FILES["user_artist"]), ["user_id", "artist_id"]
    ).head(50)
    assert latest.height == 50 and pairs.height == 50

    got = online(store, latest.select("user_id"), "policy", now=end)
    for col in ("u_streams_7d", "u_active_days_28d", "u_skip_rate_28d", "u_tenure_days"):
        assert got[col].to_list() == latest[col].to_list(), col

    entity_rows = pairs.select("user_id", "artist_id").with_columns(track_id=pl.lit(0, pl.Int64))
    got_pairs = online(store, entity_rows, "reward_model", now=end + timedelta(days=3))
    assert got_pairs["ua_plays"].to_list() == pairs["ua_plays"].to_list()
    request_day = (end + timedelta(days=3)).timestamp() // 86_400
    expected_gap = (request_day - pairs["ua_last_play_epoch_day"]).to_list()
    assert got_pairs["ua_days_since_last_play"].to_list() == expected_gap
