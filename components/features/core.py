"""Stage ``features``: feature sources from raw logs, Feast apply + materialise, training frame.

Outputs under ``out_dir`` (written atomically):
- ``sources/*.parquet``: the batch feature sources (one per view, rows stamped with the
  time they became known);
- ``feast/registry.db`` (+ ``feast/online.db`` for the SQLite online store);
- ``train_frame.parquet``: every recommended impression with its point-in-time-correct
  features from the ``reward_model`` feature service (``get_historical_features``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from components import contract
from components.features import sources as S
from components.features.definitions import SOURCE_FILES, feast_objects
from components.features.store import add_request_features, apply, historical, materialize, open_store, repo_config
from components.io import atomic_dir
from components.params import Params

TRAIN_FRAME = "train_frame.parquet"
IMPRESSION_KEYS = ["event_id", "user_id", "track_id", "artist_id", "ts", "session_id", "position", "policy_id", "propensity"]


def load_logs(raw_dir: Path) -> S.Logs:
    """The four raw tables (only the columns features need) and the log window."""
    manifest = contract.read_manifest(raw_dir)
    start = datetime.fromisoformat(manifest["window_start"])
    cols = {
        "impressions": IMPRESSION_KEYS + ["streamed", "skipped", "saved"],
        "plays": ["user_id", "ts", "track_id", "artist_id", "source"],
        "users": ["user_id", "signup_ts"],
        "tracks": ["track_id", "artist_id", "genre_id", "duration_ms", "release_ts"],
    }
    frames = {name: pl.from_arrow(contract.read(raw_dir, name, c)) for name, c in cols.items()}
    return S.Logs(start=start, n_days=int(manifest["days"]), **frames)


def build_sources(logs: S.Logs, params: Params) -> dict[str, pl.DataFrame]:
    fp = params.features
    builders = {
        "user_activity": lambda: S.user_activity(logs, fp),
        "track_stats": lambda: S.track_stats(logs, fp),
        "user_artist": lambda: S.user_artist(logs),
        "user_history": lambda: S.user_history(logs, fp),
    }
    return {name: build() for name, build in tqdm(builders.items(), desc="feature sources", unit="view")}


def training_frame(store: Any, imp: pl.DataFrame) -> pl.DataFrame:
    """Each impression in ``imp`` + its features as of the impression time (PIT join)."""
    entities = imp.select("event_id", "user_id", "track_id", "artist_id", event_timestamp=pl.col("ts"))
    joined = historical(store, entities, "reward_model")
    joined = add_request_features(joined, "event_timestamp").drop("event_timestamp")
    features = joined.drop("user_id", "track_id", "artist_id")
    return imp.select(IMPRESSION_KEYS).join(features, on="event_id", how="left").sort("event_id")

def run(params: Params, raw_dir: Path, out_dir: Path) -> dict[str, float]:
    """Compute sources, apply + materialise the Feast repo, build the training frame."""
    fp = params.features
    timings: dict[str, float] = {}
    t = time.perf_counter()
    logs = load_logs(raw_dir)
    window_end = logs.start + timedelta(days=logs.n_days)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        frames = build_sources(logs, params)
        (tmp / "sources").mkdir()
        for name, frame in frames.items():
            frame.write_parquet(tmp / "sources" / SOURCE_FILES[name], compression="zstd")
        timings["sources"] = time.perf_counter() - t

        t = time.perf_counter()
        store = open_store(repo_config(fp, tmp / "feast"))
        apply(store, feast_objects(tmp / "sources", fp))
        timings["apply"] = time.perf_counter() - t
        t = time.perf_counter()
        materialize(store, window_end, fp)
        timings["materialize"] = time.perf_counter() - t
        t = time.perf_counter()
        frame = training_frame(store, logs.impressions)
        frame.write_parquet(tmp / TRAIN_FRAME, compression="zstd")
        timings["training_frame"] = time.perf_counter() - t
        # the registry must name the sources where they will live once this folder is in place
        apply(store, feast_objects(out_dir / "sources", fp))

    metrics: dict[str, float] = {f"features/rows/{n}": f.height for n, f in frames.items()}
    metrics["features/train_frame_rows"] = frame.height
    for col in frame.columns:
        if col.startswith(("u_", "t_", "ua_")) or col == "recent_tracks":
            metrics[f"features/null_rate/{col}"] = frame[col].null_count() / max(frame.height, 1)
    metrics |= {f"features/seconds/{k}": v for k, v in timings.items()}
    return metrics
