"""Feast objects for Encore: entities, feature views (explicit TTLs) and a service per model.

Built by a function so that the same definitions serve ``feature_repo/`` (``feast apply``
from the command line) and the ``features`` stage (which points the sources at its own
output folder: a DVC workspace or a KFP artifact). The views' keys and TTLs are defined here
once; the in-memory lookup and the training-frame join read them from here.

The features stage's output folder: ``sources/<view>.parquet`` (the batch sources),
``feast/`` (registry, SQLite online store) and ``train_frame.parquet``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from components.params import FeaturesParams

TRAIN_FRAME = "train_frame.parquet"
SOURCES_DIR = "sources"
SOURCE_FILES = {
    "user_activity": "user_activity.parquet",
    "track_stats": "track_stats.parquet",
    "user_artist": "user_artist.parquet",
    "user_history": "user_history.parquet",
}


def user_activity_fields(fp: FeaturesParams) -> dict[str, str]:
    s, w = fp.short_window_days, fp.long_window_days
    return {
        f"u_streams_{s}d": "int",
        f"u_streams_{w}d": "int",
        f"u_active_days_{s}d": "int",
        f"u_active_days_{w}d": "int",
        f"u_rec_impressions_{w}d": "int",
        "u_tenure_days": "int",
        f"u_rec_stream_rate_{w}d": "float",
        f"u_skip_rate_{w}d": "float",
        f"u_save_rate_{w}d": "float",
        f"u_organic_share_{w}d": "float",
        f"u_genre_entropy_{w}d": "float",
    }


def track_stats_fields(fp: FeaturesParams) -> dict[str, str]:
    w = fp.long_window_days
    return {
        f"t_impressions_{w}d": "int",
        f"t_plays_{w}d": "int",
        "t_age_days": "int",
        "t_genre_id": "int",
        "t_duration_s": "int",
        f"t_stream_rate_{w}d": "float",
        f"t_skip_rate_{w}d": "float",
        f"t_save_rate_{w}d": "float",
        f"t_log_plays_{w}d": "float",
        f"t_completion_{w}d": "float",
        f"t_organic_share_{w}d": "float",
    }


USER_ARTIST_FIELDS = {"ua_plays": "int", "ua_days_played": "int", "ua_last_play_epoch_day": "int"}
VIEW_KEYS = {
    "user_activity": ["user_id"],
    "track_stats": ["track_id"],
    "user_artist": ["user_id", "artist_id"],
    "user_history": ["user_id"],
}


def view_ttl(view: str, fp: FeaturesParams) -> timedelta:
    """How long a view's latest row stays valid: daily snapshots expire fast, sparse views slowly."""
    days = fp.snapshot_ttl_days if view in ("user_activity", "track_stats") else fp.user_artist_ttl_days
    return timedelta(days=days)


def feast_objects(source_dir: Path, fp: FeaturesParams) -> dict[str, Any]:
    """Entities, views and services, with file sources under ``source_dir`` (absolute paths)."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float64, Int64

    kinds = {"int": Int64, "float": Float64}
    source_dir = Path(source_dir).resolve()

    def source(name: str) -> FileSource:
        return FileSource(
            name=f"{name}_source",
            path=str(source_dir / SOURCE_FILES[name]),
            timestamp_field="event_timestamp",
        )

    def fields(spec: dict[str, str]) -> list:
        return [Field(name=n, dtype=kinds[k]) for n, k in spec.items()]

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="a listener")
    track = Entity(name="track", join_keys=["track_id"], value_type=ValueType.INT64, description="a track")
    artist = Entity(
        name="artist", join_keys=["artist_id"], value_type=ValueType.INT64, description="an artist"
    )
    user_activity = FeatureView(
        name="user_activity",
        entities=[user],
        ttl=view_ttl("user_activity", fp),
        source=source("user_activity"),
        schema=fields(user_activity_fields(fp))
        + [Field(name=f"u_genre_mix_{fp.long_window_days}d", dtype=Array(Float64))],
        description="daily snapshot of a listener's rolling activity and engagement",
    )
    track_stats = FeatureView(
        name="track_stats",
        entities=[track],
        ttl=view_ttl("track_stats", fp),
        source=source("track_stats"),
        schema=fields(track_stats_fields(fp)),
        description="daily snapshot of a track's rolling engagement, popularity and attributes",
    )
    user_artist = FeatureView(
        name="user_artist",
        entities=[user, artist],
        ttl=view_ttl("user_artist", fp),
        source=source("user_artist"),
        schema=fields(USER_ARTIST_FIELDS),
        description="cumulative listening of a listener to an artist (updated on days they played it)",
    )
    user_history = FeatureView(
        name="user_history",
        entities=[user],
        ttl=view_ttl("user_history", fp),
        source=source("user_history"),
        schema=[Field(name="recent_tracks", dtype=Array(Int64))],
        description=f"the listener's last {fp.history_length} track ids, oldest first",
    )
    reward_model = FeatureService(
        name="reward_model",
        features=[user_activity, track_stats, user_artist, user_history],
        description="what the reward model scores (user context, candidate track) with",
    )
    policy = FeatureService(
        name="policy",
        features=[user_activity, user_history],
        description="the generative recommender's prompt: recent plays + bucketed activity",
    )
    return {
        "user": user,
        "track": track,
        "artist": artist,
        "user_activity": user_activity,
        "track_stats": track_stats,
        "user_artist": user_artist,
        "user_history": user_history,
        "reward_model": reward_model,
        "policy": policy,
    }
