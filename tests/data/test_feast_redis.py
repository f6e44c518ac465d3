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


def _project_keys(project: str) -> list[bytes]:
    import redis

    return list(redis.Redis(host="127.0.0.1", port=6379).scan_iter(match=f"*{project}".encode()))


def test_a_failure_before_the_folder_is_final_leaves_redis_untouched(tmp_path, tiny_raw, monkeypatch):
    """A failure while the stage is still building its folder (injected in the training frame)
    must not have written the online store: Redis is written after the folder is final."""
    require("127.0.0.1", 6379, "Redis")
    from components.features import core

    project = f"encore_test_{uuid.uuid4().hex[:8]}"
    params = tiny_params(
        features__store="redis", features__redis_connection="127.0.0.1:6379", features__project=project
    )

    def broken(*_args, **_kwargs):
        raise RuntimeError("injected: the training frame failed")

    monkeypatch.setattr(core, "training_frame", broken)
    with pytest.raises(RuntimeError, match="injected"):
        core.run(params, tiny_raw, tmp_path / "features")
    assert _project_keys(project) == [] and not (tmp_path / "features").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporaries left either


def test_an_unreachable_redis_fails_naming_it_after_the_folder_is_complete(tmp_path, tiny_raw):
    from components.featurestore.store import FeatureStoreError

    params = tiny_params(features__store="redis", features__redis_connection="127.0.0.1:1")
    with pytest.raises(FeatureStoreError, match="127.0.0.1:1"):
        run(params, tiny_raw, tmp_path / "features")
    out = tmp_path / "features"
    assert (out / "train_frame.parquet").exists() and (out / "feast" / "registry.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]
