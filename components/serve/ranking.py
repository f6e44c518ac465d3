"""Generate-then-rank in the service: the reward model a policy carries, fed from the online store.

The A/B test's ranked arm (:class:`components.sampler.served.RankedPolicy`) scores candidates with
the in-memory :class:`~components.featurestore.lookup.FeatureLookup` of the feature sources. The
service builds the same kind of lookup per scoring call from the online store — the ``user_activity``
rows of the batch's listeners, the ``track_stats`` rows of the distinct candidates, the ``user_artist``
rows of the distinct (listener, candidate's artist) pairs: one read per view and distinct key, not per
pair — and scores through the very function the A/B arm uses
(:func:`components.sampler.served.history_scorer`), as of the request's time. The ranking and the
Monte-Carlo propensities are :func:`components.sampler.ranked.rank_slates`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from components.featurestore.definitions import VIEW_KEYS
from components.featurestore.lookup import FeatureLookup
from components.featurestore.store import REQUEST_FEATURES, view_features
from components.sampler.ranked import Scorer
from components.sampler.served import history_scorer

REWARD_SERVICE = "reward_model"  # the Feast feature service of the reward model's inputs
SCORED_VIEWS = ("user_activity", "track_stats", "user_artist")  # the history comes with the request


def view_refs(store: Any) -> dict[str, list[str]]:
    """View -> its feature refs (``view:feature``) in the ``reward_model`` feature service, for the
    views read per candidate. Resolved once per service: each registry lookup costs ~1 ms."""
    return {v: refs for v, refs in view_features(store, REWARD_SERVICE).items() if v in SCORED_VIEWS}


def ranker_features(ranker: Any) -> set[str]:
    """The stored features a reward model reads (request-time ones are computed, not stored)."""
    enc = ranker.encoder
    return {*enc.user_features, *enc.candidate_features, enc.genre_mix} - set(REQUEST_FEATURES)


def online_lookup(
    store: Any,
    refs: dict[str, list[str]],
    user_ids: np.ndarray,
    track_ids: np.ndarray,
    catalogue: pl.DataFrame,
    now: datetime,
):
    """A :class:`FeatureLookup` holding the online store's rows for these (listener, track) pairs:
    one read per view (``refs``, :func:`view_refs`), of its distinct keys. ``catalogue``:
    ``track_id``, ``artist_id``."""
    pairs = pl.DataFrame(
        {"user_id": np.asarray(user_ids, dtype=np.int64), "track_id": np.asarray(track_ids, dtype=np.int64)}
    )
    pairs = pairs.join(catalogue.select("track_id", "artist_id"), on="track_id", how="left")
    views = {}
    for view, features in refs.items():
        keys = pairs.select(VIEW_KEYS[view]).drop_nulls().unique(maintain_order=True)
        answer = store.get_online_features(features=features, entity_rows=keys.to_dicts()).to_dict()
        views[view] = pl.DataFrame(answer).with_columns(pl.col(k).cast(pl.Int64) for k in VIEW_KEYS[view])
    return FeatureLookup(views, catalogue, now)


def online_scorer(
    ranker: Any,
    store: Any,
    user_ids: np.ndarray,
    histories: np.ndarray,
    now: datetime,
    refs: dict[str, list[str]] | None = None,
) -> Scorer:
    """The reward model ``ranker`` as a :data:`~components.sampler.ranked.Scorer` for one batch of
    requests: each call reads the scored pairs' features from the online store (:func:`online_lookup`)
    and scores them with the request's recent plays (``histories`` (n, h), right-aligned, ``-1``
    padding — what the prompt was built from), as of ``now``. ``refs``: the service's
    :func:`view_refs` (resolved here when not given)."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    catalogue = ranker.encoder.catalogue()
    refs = refs or view_refs(store)

    def score(rows: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        lookup = online_lookup(store, refs, user_ids[rows], tracks, catalogue, now)
        return history_scorer(ranker.with_lookup(lookup), user_ids, histories)(rows, tracks)

    return score
