"""Per-listener mutable state: satisfaction, habits, fatigue, churn, recent plays.

This is hidden truth. Policies see only :meth:`UserState.recent` (the listener's own
recent plays, which a real service also knows) through their contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class UserState:
    satisfaction: np.ndarray  # (U,) float32, ~[-5, 5]; 0 = neutral
    habit: np.ndarray  # (U, A) float32 in [0, 1]
    fatigue: np.ndarray  # (U, G) float32 >= 0
    artist_fatigue: np.ndarray  # (U, A) float32 >= 0; (U, 0) when the world has no artist fatigue
    churned: np.ndarray  # (U,) bool; a churned listener never returns
    history: np.ndarray  # (U, H) int64 ring buffer of recent track ids, -1 = empty
    history_ptr: np.ndarray  # (U,) int64: total plays ever appended (ring position = ptr % H)

    @classmethod
    def fresh(
        cls, n_users: int, n_artists: int, n_genres: int, history_length: int, artist_fatigue: bool = False
    ) -> "UserState":
        return cls(
            satisfaction=np.zeros(n_users, np.float32),
            habit=np.zeros((n_users, n_artists), np.float32),
            fatigue=np.zeros((n_users, n_genres), np.float32),
            artist_fatigue=np.zeros((n_users, n_artists if artist_fatigue else 0), np.float32),
            churned=np.zeros(n_users, bool),
            history=np.full((n_users, history_length), -1, np.int64),
            history_ptr=np.zeros(n_users, np.int64),
        )

    def clone(self) -> "UserState":
        """A deep copy: A/B arms start from identical, independent states."""
        return UserState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def subset(self, users: np.ndarray) -> "UserState":
        """The state of some users only (row order = ``users``)."""
        return UserState(**{f.name: getattr(self, f.name)[users].copy() for f in fields(self)})

    def recent(self, users: np.ndarray) -> np.ndarray:
        """(n, H) recent track ids of ``users``, oldest first, most recent last, -1 padded on the left."""
        H = self.history.shape[1]
        ptr = self.history_ptr[users]
        idx = (ptr[:, None] + np.arange(H)[None, :]) % H
        return np.take_along_axis(self.history[users], idx, axis=1)

    def append_history(self, users: np.ndarray, tracks: np.ndarray) -> None:
        """Append plays, given sorted by (user, time), to each user's ring buffer."""
        if len(users) == 0:
            return
        H = self.history.shape[1]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        counts = np.diff(np.r_[starts, len(users)])
        rank = np.arange(len(users)) - np.repeat(starts, counts)
        total = np.repeat(counts, counts)
        keep = rank >= total - H  # only the last H plays of the day can survive
        u, r = users[keep], rank[keep]
        self.history[u, (self.history_ptr[u] + r) % H] = tracks[keep]
        uniq = users[starts]
        self.history_ptr[uniq] += counts
