"""The candidate short-term signals: each is a per-impression label column.

Every candidate is measured the same way everywhere — labelled by :mod:`components.reward.labels`,
averaged per slot over an experiment arm's first week by the signals stage, estimated per slot
off-policy by evaluation — so a weight learned on the experiment library means the same thing
when the composite becomes the RL reward and when the gate predicts a challenger's effect.

``orientation``: +1 if more is meant to be better, -1 if less is (the learned composite's
weights are non-negative on oriented signals); ``horizon``: which of the label horizons
(:class:`components.reward.signals.Horizons`, set in ``label``) the signal looks ahead over —
:meth:`Candidate.lag` turns it into the days after the impression before the signal is known;
``scope``: what the signal is an outcome of —

- ``impression``: this recommendation's own consequence (a stream, a save, the artist's return);
- ``slate``: the slate around it or what the listener was served before (concentration, repeats);
- ``listener``: the listener's whole behaviour afterwards, shared among a session's slots
  (``*_credit``: active days, retention).

Why it matters: the reward model scores one (listener, track) at a time, so it can learn only
what that pair causes. Trained on a listener-scope signal it learns who is active, not what is
worth recommending (measured: Spearman 0.05 with the true long-term value of random pairs,
against 0.34 trained on ``saved``); ``signals.composite_scope`` keeps the per-slot reward to
impression-scope signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.reward.signals import Horizons

Scope = Literal["impression", "slate", "listener"]
SCOPES: tuple[Scope, ...] = ("impression", "slate", "listener")  # narrowest first: each widens the one before


@dataclass(frozen=True)
class Candidate:
    name: str
    column: str  # the label column (``*_credit`` for user-level outcomes shared by a session)
    orientation: int
    horizon: Literal["active", "artist_return"] | None  # None: known on the impression's day
    meaning: str
    scope: Scope = "impression"

    def lag(self, h: Horizons) -> int:
        """Days after its impression before the signal is known (0: on the day)."""
        return 0 if self.horizon is None else getattr(h, self.horizon)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("streamed", "streamed", 1, None, "played for at least 30 s"),
    Candidate("saved", "saved", 1, None, "saved to the library"),
    Candidate("skipped", "skipped", -1, None, "started and stopped within 30 s"),
    Candidate(
        "listen_fraction", "listen_fraction", 1, None, "share of the track played: listening-time share"
    ),
    Candidate("discovery", "discovery", 1, None, "first stream of an artist new to the listener"),
    Candidate(
        "slate_artist_concentration",
        "slate_artist_concentration",
        -1,
        None,
        "share of the slate's other slots from the same artist",
        "slate",
    ),
    Candidate(
        "served_repeat_7d",
        "served_repeat_7d",
        -1,
        None,
        "the listener was shown this track in the last 7 days",
        "slate",
    ),
    Candidate(
        "active_days_7d",
        "active_days_7d_credit",
        1,
        "active",
        "distinct active days in the next 7 (session credit)",
        "listener",
    ),
    Candidate(
        "retained_7d",
        "retained_7d_credit",
        1,
        "active",
        "active in the last 3 days of the next week (credit)",
        "listener",
    ),
    Candidate(
        "self_plays_7d",
        "self_plays_7d_credit",
        1,
        "active",
        "organic and search plays per day in the next 7 (credit)",
        "listener",
    ),
    Candidate(
        "surrogate_28d",
        "surrogate_active_days_28d_credit",
        1,
        "active",
        "the surrogate index's 28-day active days, from 7-day signals (credit)",
        "listener",
    ),
    Candidate(
        "artist_return_14d",
        "artist_return_14d",
        1,
        "artist_return",
        "the artist played again on >= 2 later days in 14",
    ),
    Candidate(
        "discovery_habit_14d",
        "discovery_habit_14d",
        1,
        "artist_return",
        "a discovery whose artist is then played on >= 2 later days in 14",
    ),
)
BY_NAME = {c.name: c for c in CANDIDATES}
FIXED_COMPOSITE = "composite_fixed"  # the hand-set composite, scored beside the candidates
BY_COLUMN = {c.column: c for c in CANDIDATES}
COLUMNS = tuple(c.column for c in CANDIDATES)
