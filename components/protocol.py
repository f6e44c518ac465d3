"""The one interface every recommender implements: ``recommend(contexts) -> slates``.

The world's logging policy and oracles, the generative policy and the A/B runner all speak
it. It lives below the world package so a policy can implement it without reaching the
simulator's truth, and the world can call any policy without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Contexts:
    """What a policy may see when asked for slates: one row per (user, session).

    ``history`` holds each user's recent track ids, oldest first, -1 padded on the left.
    """

    user_ids: np.ndarray  # (n,)
    session_index: np.ndarray  # (n,) 0 for the first session of the day
    day: int  # days since the first logged day
    history: np.ndarray  # (n, H)
    slate_size: int
    n_tracks: int


@dataclass(frozen=True)
class Slates:
    """``tracks`` (n, k) distinct track ids per row; ``propensities`` per slot if the policy knows them;
    ``policy_ids`` (n,) when rows were served by different policies (an experiment's arms in one
    world: the closed loop), else every row is the policy's own ``policy_id``."""

    tracks: np.ndarray
    propensities: np.ndarray | None = None
    policy_ids: np.ndarray | None = None


@runtime_checkable
class Policy(Protocol):
    policy_id: int

    def recommend(self, contexts: Contexts) -> Slates: ...
