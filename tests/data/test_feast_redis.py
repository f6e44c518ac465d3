"""Integration: materialise into the real Redis and read the same values back online."""

from __future__ import annotations

import uuid
from datetime import datetime

import polars as pl
import pytest

from components.features.core import run
from components.featurestore.store import online, open_store, repo_config
from tests.conftest import tiny_params
from tests.feast_checks import assert_online_equals_latest_offline
from tests.service_checks import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_store(tmp_path_factory, tiny_raw):
    require("127.0.0.1", 6379, "Redis")
    project = f"encore_test_{uuid.uuid4().hex[:8]}"
    params = tiny_params(
        features__store="redis", features__redis_connection="127.0.0.1:6379", features__project=project
    )
    out = tmp_path_factory.mktemp("redis_features") / "features"
    run(params, tiny_raw, out)
    store = open_store(repo_config(params.features, out / "feast"))
    yield store, out, params
    store.teardown()  # removes this project's keys from Redis


def test_online_values_equal_the_latest_offline_values(redis_store):
    store, out, params = redis_store
    assert store.config.online_store.type == "redis"
    assert_online_equals_latest_offline(store, out)


def test_unknown_entities_come_back_empty(redis_store):
    store, _, _ = redis_store
    got = online(store, pl.DataFrame({"user_id": [10**9]}), "policy", now=datetime(2030, 1, 1))
    assert got["u_streams_7d"].to_list() == [None]
