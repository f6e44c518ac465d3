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


def test_features_without_an_online_store_keep_what_the_lookup_and_the_reward_model_read(
    tmp_path, tiny_raw, tiny_features, params
):
    """The closed loop builds its rounds' features with ``online=False``: the sources (what
    FeatureLookup reads) and the training frame (what the reward model trains on) must be exactly
    the full stage's, and nothing is materialised online."""
    from components.features.core import run
    from components.featurestore.definitions import SOURCE_FILES, SOURCES_DIR, TRAIN_FRAME

    out = tmp_path / "features"
    metrics = run(params, tiny_raw, out, online=False)
    assert "features/seconds/materialize" not in metrics
    tracks = pl.from_arrow(contract.read(tiny_raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(out, params.features, tracks)
    users = lookup.users().select("user_id").head(20)
    served = {
        name: online(open_store(repo_config(params.features, d / "feast")), users, "policy", lookup.as_of)
        for name, d in (("without", out), ("full", tiny_features))
    }
    assert served["without"]["u_streams_7d"].null_count() == users.height
    assert served["full"]["u_streams_7d"].null_count() < users.height  # the full stage's store has them
    for name in [*(f"{SOURCES_DIR}/{f}" for f in SOURCE_FILES.values()), TRAIN_FRAME]:
        assert pl.read_parquet(out / name).equals(pl.read_parquet(tiny_features / name)), name
