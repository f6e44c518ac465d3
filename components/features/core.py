"""Stage ``features``: feature sources from raw logs, Feast apply + materialise, training frame.

Outputs under ``out_dir`` (written atomically):
- ``sources/*.parquet``: the batch feature sources (one per view, rows stamped with the
  time they became known);
- ``feast/registry.db`` (+ ``feast/online.db`` for the SQLite online store);
- ``train_frame.parquet``: every recommended impression with its point-in-time-correct
  features from the ``reward_model`` feature service (``get_historical_features``).

What lives outside the folder — the Redis online store, the cluster's shared SQL registry —
is written only after the folder is final (the training frame is built from a registry file
inside the folder). A failure before that leaves them exactly as they were; a failure while
writing them leaves a complete folder, a shared registry naming sources that exist, and an
online store that the next run's materialisation completes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from components import contract
from components.featurestore import sources as S
from components.featurestore.definitions import (
    SOURCE_FILES,
    SOURCES_DIR,
    TRAIN_FRAME,
    VIEW_KEYS,
    feast_objects,
)
from components.featurestore.store import (
    FeatureStoreError,
    add_request_features,
    apply,
    historical,
    materialize,
    open_store,
    repo_config,
    view_features,
)
from components.io import atomic_dir
from components.logs import Logs, load_logs, window
from components.params import FeaturesParams, Params

IMPRESSION_KEYS = [
    "event_id",
    "user_id",
    "track_id",
    "artist_id",
    "ts",
    "session_id",
    "position",
    "policy_id",
    "propensity",
]
LOG_COLUMNS = {
    "impressions": IMPRESSION_KEYS + ["streamed", "skipped", "saved"],
    "plays": ["user_id", "ts", "track_id", "artist_id", "ms_played", "source"],
    "users": ["user_id", "signup_ts"],
    "tracks": ["track_id", "artist_id", "genre_id", "duration_ms", "release_ts"],
}


# impressions per block of the training frame: a block's point-in-time joins hold ~1.3 kB a
# row, so the frame is built a block at a time: ~8 GB at most, whatever the log's size. The
# default world's 4.5M impressions are one block (two blocks cost it a quarter more time).
BLOCK_ROWS = 6_000_000


def source_builders(params: Params) -> dict[str, Callable[[Logs], pl.DataFrame]]:
    fp = params.features
    return {
        "user_activity": lambda logs: S.user_activity(logs, fp),
        "track_stats": lambda logs: S.track_stats(logs, fp),
        "user_artist": S.user_artist,
        "user_history": lambda logs: S.user_history(logs, fp),
    }


def build_sources(logs: Logs, params: Params) -> dict[str, pl.DataFrame]:
    builders = source_builders(params)
    return {name: build(logs) for name, build in tqdm(builders.items(), desc="feature sources", unit="view")}


def training_frame(store: Any, imp: pl.DataFrame) -> pl.DataFrame:
    """Each impression in ``imp`` + its ``reward_model`` features as of the impression time.

    Snapshots are stamped at midnights, so every instant of a day sees the same rows: the
    point-in-time join runs once per (entity, day) — as of one microsecond after midnight —
    instead of once per impression, and is joined back. Same values, ~10x fewer rows.
    """
    base = imp.select(IMPRESSION_KEYS).with_columns(
        _as_of=pl.col("ts").dt.truncate("1d") + pl.duration(microseconds=1)
    )
    frame = base
    for view, refs in view_features(store, "reward_model").items():
        keys = VIEW_KEYS[view]
        entities = base.select(*keys, event_timestamp=pl.col("_as_of")).unique()
        values = historical(store, entities, refs).rename({"event_timestamp": "_as_of"})
        values = values.with_columns(pl.col("_as_of").cast(base.schema["_as_of"]))
        frame = frame.join(values, on=[*keys, "_as_of"], how="left")
    return add_request_features(frame.drop("_as_of"), "ts").sort("event_id")


def write_training_frame(store: Any, raw_dir: Path, path: Path) -> None:
    """:func:`training_frame` of every impression in ``raw_dir``, written to ``path`` (sorted by
    ``event_id``), a block of at most ``BLOCK_ROWS`` impressions (by ``event_id``) at a time:
    memory follows the block, not the log. Blocks are written apart and streamed into one file."""
    scan = pl.scan_parquet(contract.IMPRESSIONS.file(raw_dir)).select(IMPRESSION_KEYS)
    ids = scan.select("event_id").collect().to_series().sort()
    if len(ids) <= BLOCK_ROWS:
        training_frame(store, scan.collect()).write_parquet(path, compression="zstd")
        return
    bounds = [*ids.gather_every(BLOCK_ROWS).to_list(), None]
    del ids
    parts = []
    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        block = (
            pl.col("event_id") >= lo if hi is None else pl.col("event_id").is_between(lo, hi, closed="left")
        )
        parts.append(path.with_name(f"{path.stem}.part{i:04d}.parquet"))
        training_frame(store, scan.filter(block).collect()).write_parquet(parts[-1], compression="zstd")
    pl.scan_parquet(parts).sink_parquet(path, compression="zstd")
    for part in parts:
        part.unlink()


def publish(fp: FeaturesParams, out_dir: Path, window_end: datetime) -> None:
    """Write the stores outside ``out_dir`` once it is final: for the cluster store, apply the
    views to the shared SQL registry (naming sources that now exist); then materialise the online
    store (Redis) through the registry the serving side reads.

    Raises :class:`FeatureStoreError` naming the store.
    """
    where = fp.redis_connection if fp.store == "redis" else f"the cluster store ({fp.cluster_config})"
    try:
        store = open_store(repo_config(fp, out_dir / "feast"))
        if fp.store == "cluster":
            apply(store, feast_objects(out_dir / SOURCES_DIR, fp))
        materialize(store, window_end, fp)
    except Exception as exc:  # Redis/SQL client errors have no common base class
        raise FeatureStoreError(
            f"features: {out_dir} is complete, but writing the online store / shared registry at {where} "
            f"failed ({type(exc).__name__}: {exc}); rerun the stage once the store answers."
        ) from exc


def run(params: Params, raw_dir: Path, out_dir: Path, online: bool = True) -> dict[str, float]:
    """Compute sources, apply + materialise the Feast repo, build the training frame.

    ``online=False`` skips the online store (materialising the embedded one is a third of the
    stage): for callers that read only the sources and the training frame — the closed loop's
    rounds, whose features no service reads (it looks features up from the sources)."""
    fp = params.features
    timings: dict[str, float] = {}
    t = time.perf_counter()
    start, n_days = window(raw_dir)
    window_end = start + timedelta(days=n_days)
    out_dir = Path(out_dir)
    source_rows: dict[str, int] = {}
    with atomic_dir(out_dir) as tmp:
        (tmp / SOURCES_DIR).mkdir()
        # one source at a time, from only the columns it reads, written and dropped: memory
        # follows the largest source, not the logs (the training frame reads its own columns)
        for name, build in tqdm(source_builders(params).items(), desc="feature sources", unit="view"):
            frame = build(load_logs(raw_dir, S.SOURCE_COLUMNS[name]))
            frame.write_parquet(tmp / SOURCES_DIR / SOURCE_FILES[name], compression="zstd")
            source_rows[name] = frame.height
            del frame
        timings["sources"] = time.perf_counter() - t

        t = time.perf_counter()
        # a fresh registry file inside the folder: applying it touches nothing outside
        store = open_store(repo_config(fp, tmp / "feast", local_registry=True))
        apply(store, feast_objects(tmp / SOURCES_DIR, fp))
        timings["apply"] = time.perf_counter() - t
        if online and fp.store == "embedded":  # its online store is a file in the folder
            t = time.perf_counter()
            materialize(store, window_end, fp)
            timings["materialize"] = time.perf_counter() - t
        t = time.perf_counter()
        write_training_frame(store, raw_dir, tmp / TRAIN_FRAME)
        train_frame = pl.scan_parquet(tmp / TRAIN_FRAME)
        features = [
            c
            for c in train_frame.collect_schema().names()
            if c.startswith(("u_", "t_", "ua_")) or c == "recent_tracks"
        ]
        counts = train_frame.select(pl.len(), *[pl.col(c).null_count() for c in features]).collect()
        timings["training_frame"] = time.perf_counter() - t
        # the registry must name the sources where they will live once this folder is in place
        apply(store, feast_objects(out_dir / SOURCES_DIR, fp))
    if online and fp.store != "embedded":
        t = time.perf_counter()
        publish(fp, out_dir, window_end)
        timings["materialize"] = time.perf_counter() - t

    metrics: dict[str, float] = {f"features/rows/{n}": rows for n, rows in source_rows.items()}
    height = counts["len"][0]
    metrics["features/train_frame_rows"] = height
    for col in features:
        metrics[f"features/null_rate/{col}"] = counts[col][0] / max(height, 1)
    metrics |= {f"features/seconds/{k}": v for k, v in timings.items()}
    return metrics
