"""Feast glue: open the store, apply, materialise, and read features (offline and online).

The repository's ``feature_store.yaml`` (or ``feature_store.redis.yaml``) is the template;
the stage substitutes its own paths and the ``features`` params, so the committed files
stay the single description of how the store is configured.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from components.errors import EncoreError, ParamsError
from components.params import FeaturesParams
from components.paths import project_root

REPO_DIR = project_root() / "feature_repo"


class FeatureStoreError(EncoreError):
    """A store outside the stage's folder (Redis, the shared SQL registry) could not be written."""


TEMPLATES = {"embedded": "feature_store.yaml", "redis": "feature_store.redis.yaml"}
EPOCH_DAY_US = 86_400_000_000


def repo_config(
    fp: FeaturesParams, store_dir: Path, repo_dir: Path = REPO_DIR, local_registry: bool = False
) -> Any:
    """A Feast RepoConfig from the committed configuration for ``features.store``.

    - embedded / redis: ``feature_repo/feature_store[.redis].yaml`` with the registry (and the
      SQLite online store) under ``store_dir``;
    - cluster: ``features.cluster_config`` as mounted in the cluster, ``${VARS}`` expanded from
      the environment (addresses and credentials come from Secrets, never from the file);
      ``local_registry``: with a registry file under ``store_dir`` instead of the shared SQL
      registry (the stage builds there first, and publishes to the shared one last).
    """
    from feast.repo_config import RepoConfig

    if fp.store == "cluster":
        raw = yaml.safe_load(_expand_env(_cluster_file(fp).read_text(), fp.cluster_config))
        if local_registry:
            raw["registry"] = str(Path(store_dir, "registry.db").resolve())
    else:
        raw = yaml.safe_load((repo_dir / TEMPLATES[fp.store]).read_text())
        raw["registry"] = str(Path(store_dir, "registry.db").resolve())
        online = raw["online_store"]
        if online["type"] == "sqlite":
            online["path"] = str(Path(store_dir, "online.db").resolve())
        elif online["type"] == "redis":
            online["connection_string"] = fp.redis_connection
    raw["project"] = fp.project
    return RepoConfig(repo_path=str(repo_dir), **raw)


def _cluster_file(fp: FeaturesParams) -> Path:
    path = Path(os.environ.get("ENCORE_FEAST_CONFIG", fp.cluster_config))
    path = path if path.is_absolute() else project_root() / path
    if not path.exists():
        raise ParamsError(
            f"{path}: the cluster Feast configuration (features.store: cluster) is not there; "
            "deploy k8s/base/feast (it mounts it) or set ENCORE_FEAST_CONFIG."
        )
    return path


def _expand_env(text: str, where: str) -> str:
    """Substitute ``${NAME}``; a variable that is not set is an error naming it."""
    missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", text) if m not in os.environ})
    if missing:
        raise ParamsError(
            f"{where}: environment variable(s) {', '.join(missing)} not set (the cluster Feast config "
            "reads them)."
        )
    return re.sub(r"\$\{(\w+)\}", lambda m: os.environ[m.group(1)], text)


def open_store(config: Any) -> Any:
    from feast import FeatureStore

    logging.getLogger("feast").setLevel(logging.WARNING)
    return FeatureStore(config=config)


def apply(store: Any, objects: dict[str, Any]) -> None:
    """``feast apply``: register (or update) entities, views and services."""
    store.apply(list(objects.values()))


def materialize(store: Any, end: datetime, fp: FeaturesParams) -> None:
    """Load the latest value of every entity (within its TTL) into the online store."""
    start = end - timedelta(days=max(fp.snapshot_ttl_days, fp.user_artist_ttl_days))
    store.materialize(start_date=start, end_date=end)


REQUEST_FEATURES = ("ua_days_since_last_play",)  # what add_request_features computes (never stored)


def add_request_features(frame: pl.DataFrame, ts_column: str) -> pl.DataFrame:
    """Features that depend on *when* a request is made, computed the same way offline and online.

    ``ua_days_since_last_play``: whole days between the request and the last day the listener
    played the candidate's artist (null if never).
    """
    request_day = pl.col(ts_column).dt.epoch("us") // EPOCH_DAY_US
    return frame.with_columns(
        ua_days_since_last_play=(request_day - pl.col("ua_last_play_epoch_day")).cast(pl.Int64)
    )


def historical(store: Any, entities: pl.DataFrame, features: Any) -> pl.DataFrame:
    """Point-in-time join of ``features`` (a service, or ``view:feature`` refs) onto ``entities``
    (join keys + ``event_timestamp``)."""
    job = store.get_historical_features(
        entity_df=entities.to_pandas(use_pyarrow_extension_array=False), features=features
    )
    return pl.from_arrow(job.to_arrow())


def view_features(store: Any, service: str) -> dict[str, list[str]]:
    """``view name -> feature refs`` of a feature service."""
    out: dict[str, list[str]] = {}
    for projection in store.get_feature_service(service).feature_view_projections:
        out[projection.name] = [f"{projection.name}:{f.name}" for f in projection.features]
    return out


def online(store: Any, entities: pl.DataFrame, service: str, now: datetime) -> pl.DataFrame:
    """Online features for ``entities`` (join keys only), plus the request-time features at ``now``."""
    rows = entities.to_dicts()
    response = store.get_online_features(features=store.get_feature_service(service), entity_rows=rows)
    frame = pl.DataFrame(response.to_dict())
    frame = frame.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("request_ts"))
    if "ua_last_play_epoch_day" in frame.columns:
        frame = add_request_features(frame, "request_ts")
    return frame
