"""The in-memory FeatureLookup serves exactly what the Feast online store serves."""

from __future__ import annotations

import numpy as np
import polars as pl

from components import contract
from components.featurestore.lookup import FeatureLookup
from components.featurestore.store import online, open_store, repo_config


def test_lookup_equals_the_online_store(tiny_raw, tiny_features, params):
    tracks = pl.from_arrow(contract.read(tiny_raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(tiny_features, params.features, tracks)
    store = open_store(repo_config(params.features, tiny_features / "feast"))
    users = lookup.users()["user_id"].to_numpy()[:20]
    slate = np.array([[5, 17, 42]])
    mine = lookup.frame(np.repeat(users, 1), np.repeat(slate, len(users), axis=0))
    rows = mine.select("user_id", "track_id", "artist_id")
    theirs = online(store, rows, "reward_model", now=lookup.as_of)
    for col in (
        "u_streams_7d",
        "u_skip_rate_28d",
        "t_plays_28d",
        "t_completion_28d",
        "ua_plays",
        "recent_tracks",
        "ua_days_since_last_play",
    ):
        assert mine[col].to_list() == theirs[col].to_list(), col
    assert mine["ua_plays"].null_count() < mine.height or mine["u_streams_7d"].null_count() < mine.height
