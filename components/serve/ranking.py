"""Generate-then-rank in the service: the reward model a policy carries, fed from the online store.

The A/B test's ranked arm (:class:`components.sampler.served.RankedPolicy`) scores candidates with
the offline :class:`~components.featurestore.lookup.FeatureLookup`; the service reads the same
columns for the same (listener, candidate) pairs from Feast's ``reward_model`` feature service —
user activity, the candidate's ``track_stats``, the listener's ``user_artist`` row for the
candidate's artist — and the request-time features at the moment of the request. Everything after
the read is shared: the ranking and the Monte-Carlo propensities are
:func:`components.sampler.ranked.rank_slates`, and the slot probabilities of the policy alone are
the sampler's decoding (``components.policy.decoding.slot_probabilities``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from components.featurestore.store import online
from components.sampler.ranked import Scorer

REWARD_SERVICE = "reward_model"  # the Feast feature service of the reward model's inputs (definitions)


def online_scorer(
    ranker: Any, store: Any, user_ids: np.ndarray, histories: np.ndarray, now: datetime
) -> Scorer:
    """The reward model ``ranker`` as a :data:`~components.sampler.ranked.Scorer` for one batch of
    requests: each call reads the scored pairs' features from the online store in one round trip
    and scores them with the request's recent plays (``histories`` (n, h), right-aligned, ``-1``
    padding — what the prompt was built from), as of ``now``."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    recent = pl.Series(
        "recent_tracks",
        [[int(t) for t in row if t >= 0] for row in np.asarray(histories)],
        dtype=pl.List(pl.Int64),
    )

    def score(rows: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        tracks = np.asarray(tracks, dtype=np.int64)
        entities = pl.DataFrame(
            {
                "user_id": user_ids[rows],
                "track_id": tracks,
                "artist_id": ranker.encoder.history_artists(tracks).astype(np.int64),
            }
        )
        frame = online(store, entities, REWARD_SERVICE, now)
        frame = frame.with_columns(recent.gather(rows))
        return ranker.score_frame(frame)

    return score
