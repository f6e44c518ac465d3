"""Integration: materialise into the real Redis and read the same values back online."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import polars as pl
import pytest

from components.features.core import run
from components.features.definitions import SOURCE_FILES
from components.features.store import online, open_store, repo_config
from tests.conftest import tiny_params
from tests.service_checks import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory, tiny_raw):
    require("127.0.0.1", 6379, "Redis")
    project = f"encore_test_{uuid.uuid4().hex[:8]}"
    params = tiny_params(features__store="redis", features__redis_connection="127.0.0.1:6379", features__project=project)
    out = tmp_path_factory.mktemp("redis_features") / "features"
    run(params, tiny_raw, out)
    store = open_store(repo_config(params.features, out / "feast"))
    yield store, out, params
    store.teardown()  # removes this project's keys from Redis


def _latest(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort("event_timestamp").group_by(keys).last()


def test_online_values_equal_the_latest_offline_values(redis_store):
    store, out, params = redis_store
    assert store.config.online_store.type == "redis"
    activity = pl.read_parquet(out / "sources" / SOURCE_FILES["user_activity"])
    end = activity["event_timestamp"].max()
    latest = _latest(activity, ["user_id"]).filter(pl.col("event_timestamp") == end).sort("user_id").head(50)
    pairs = _latest(pl.read_parquet(out / "sources" / SOURCE_FILES["user_artist"]), ["user_id", "artist_id"]).head(50)
    assert latest.height == 50 and pairs.height == 50

    got = online(store, latest.select("user_id"), "policy", now=end)
    for col in ("u_streams_7d", "u_active_days_28d", "u_skip_rate_28d", "u_tenure_days"):
        assert got[col].to_list() == latest[col].to_list(), col

    entity_rows = pairs.select("user_id", "artist_id").with_columns(track_id=pl.lit(0, pl.Int64))
    got_pairs = online(store, entity_rows, "reward_model", now=end + timedelta(days=3))
    assert got_pairs["ua_plays"].to_list() == pairs["ua_plays"].to_list()
    expected_gap = ((end + timedelta(days=3)).timestamp() // 86_400 - pairs["ua_last_play_epoch_day"]).to_list()
    assert got_pairs["ua_days_since_last_play"].to_list() == expected_gap


def test_unknown_entities_come_back_empty(redis_store):
    store, _, _ = redis_store
    got = online(store, pl.DataFrame({"user_id": [10**9]}), "policy", now=datetime(2030, 1, 1))
    assert got["u_streams_7d"].to_list() == [None]
