"""Latest feature values per entity, in memory: what the online store serves, without a round trip.

The RL stage scores thousands of generated slates per second and the evaluator scores
every held-out impression, so they read the same values the online store holds (the
latest row per entity within its TTL, as of a time) from the feature sources directly.
``tests/data/test_feature_lookup.py`` checks the two agree.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from components.featurestore.definitions import SOURCE_FILES, SOURCES_DIR, VIEW_KEYS, view_ttl
from components.featurestore.store import add_request_features
from components.params import FeaturesParams


class FeatureLookup:
    def __init__(self, views: dict[str, pl.DataFrame], tracks: pl.DataFrame, as_of: datetime):
        self.views = views
        self.tracks = tracks.select("track_id", "artist_id")
        self.as_of = as_of

    @classmethod
    def from_sources(
        cls, features_dir: Path, fp: FeaturesParams, tracks: pl.DataFrame, as_of: datetime | None = None
    ) -> "FeatureLookup":
        src = Path(features_dir) / SOURCES_DIR
        frames = {name: pl.read_parquet(src / f) for name, f in SOURCE_FILES.items()}
        as_of = as_of or max(f["event_timestamp"].max() for f in frames.values())
        views = {}
        for name, frame in frames.items():
            oldest = as_of - view_ttl(name, fp)
            fresh = frame.filter((pl.col("event_timestamp") <= as_of) & (pl.col("event_timestamp") >= oldest))
            views[name] = (
                fresh.sort("event_timestamp").group_by(VIEW_KEYS[name]).last().drop("event_timestamp")
            )
        return cls(views, tracks, as_of)

    def users(self) -> pl.DataFrame:
        """Every user with a fresh activity snapshot, with their features and recent tracks."""
        return (
            self.views["user_activity"]
            .join(self.views["user_history"], on="user_id", how="left")
            .sort("user_id")
        )

    def frame(
        self,
        user_ids: np.ndarray,
        slates: np.ndarray,
        histories: list[list[int]] | pl.Series | None = None,
        request_ts: datetime | pl.Series | None = None,
    ) -> pl.DataFrame:
        """One row per (user, slate item), row-major: the columns the reward model encodes.

        ``histories`` (one per user, or a list Series of n*k rows) and ``request_ts`` (one time, or
        one per row) default to the lookup's own: its latest recent plays, its as-of time."""
        n, k = slates.shape
        rows = pl.DataFrame(
            {
                "user_id": np.repeat(np.asarray(user_ids, dtype=np.int64), k),
                "track_id": slates.reshape(-1).astype(np.int64),
                "row": np.arange(n * k),
            }
        ).join(self.tracks, on="track_id", how="left")
        rows = rows.join(self.views["user_activity"], on="user_id", how="left")
        rows = rows.join(self.views["track_stats"], on="track_id", how="left")
        rows = rows.join(self.views["user_artist"], on=["user_id", "artist_id"], how="left")
        if histories is None:
            rows = rows.join(self.views["user_history"], on="user_id", how="left")
        elif isinstance(histories, pl.Series):
            rows = rows.sort("row").with_columns(recent_tracks=histories.cast(pl.List(pl.Int64)))
        else:
            repeated = [list(h) for h in histories for _ in range(k)]
            rows = rows.sort("row").with_columns(recent_tracks=pl.Series(repeated, dtype=pl.List(pl.Int64)))
        if isinstance(request_ts, pl.Series):
            rows = rows.sort("row").with_columns(request_ts=request_ts.cast(pl.Datetime("us", "UTC")))
        else:
            rows = rows.with_columns(
                request_ts=pl.lit(request_ts or self.as_of).cast(pl.Datetime("us", "UTC"))
            )
        return add_request_features(rows, "request_ts").sort("row")
