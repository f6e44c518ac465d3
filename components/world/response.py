"""How a listener responds to a track: stream probability and experienced value (the truth).

Shared by the daily dynamics and by the oracles, so an oracle optimises exactly what the
world does — that is what makes them bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.params import DynamicsParams
from components.world.catalogue import Catalogue, Population
from components.world.exact import dot, rowwise_dot
from components.world.rng import sigmoid
from components.world.state import UserState


@dataclass(frozen=True)
class Response:
    """Per (user, track) cell: P(stream | examined), value if streamed, habit strength."""

    p_stream: np.ndarray
    value: np.ndarray
    habit: np.ndarray


def respond(
    dyn: DynamicsParams,
    cat: Catalogue,
    pop: Population,
    state: UserState | None,
    users: np.ndarray,
    tracks: np.ndarray | None = None,
) -> Response:
    """Response of ``users`` (n,) to ``tracks`` (n, k), or to the whole catalogue when ``tracks`` is None.

    ``state=None`` gives the state-free response (no habit, no fatigue): the static truth
    that labels are checked against.
    """
    taste = pop.taste[users]
    if tracks is None:
        aff = dot(taste, cat.track_vec)  # (n, T)
        artist = cat.track_artist[None, :]
        genre = cat.track_genre[None, :]
        catch, depth, logpop = (x[None, :] for x in (cat.catchiness, cat.depth, cat.log_popularity))
    else:
        aff = rowwise_dot(taste, cat.track_vec[tracks])
        artist, genre = cat.track_artist[tracks], cat.track_genre[tracks]
        catch, depth, logpop = cat.catchiness[tracks], cat.depth[tracks], cat.log_popularity[tracks]
    if state is None:
        hab = np.zeros_like(aff)
        fat = np.zeros_like(aff)
    else:
        hab = state.habit[users[:, None], artist]
        fat = state.fatigue[users[:, None], genre]
        if state.artist_fatigue.size:  # repeating an artist wears it out on top of its genre
            fat = fat + state.artist_fatigue[users[:, None], artist]
    logit = (
        dyn.stream_bias
        + dyn.stream_affinity * aff
        + dyn.stream_catchiness * catch
        + dyn.stream_habit * hab
        - dyn.stream_fatigue * fat
        + dyn.stream_popularity * logpop
    )
    value = dyn.value_bias + dyn.value_affinity * aff + dyn.value_depth * depth - dyn.value_fatigue * fat
    return Response(p_stream=sigmoid(logit).astype(np.float32), value=value.astype(np.float32), habit=hab)


def habit_worth(dyn: DynamicsParams, cat: Catalogue, pop: Population, users: np.ndarray) -> np.ndarray:
    """(n, A) what a habit with each artist is worth per organic play: the expected value of a
    play of that artist's typical track (affinity to the artist, its mean depth), floored at 0."""
    aff = dot(pop.taste[users], cat.artist_vec)
    return np.maximum(
        dyn.value_bias + dyn.value_affinity * aff + dyn.value_depth * cat.artist_depth()[None, :], 0.0
    )


def long_term_value(
    dyn: DynamicsParams, resp: Response, openness: np.ndarray, habit_weight: float, worth: np.ndarray
) -> np.ndarray:
    """Expected long-term worth of recommending a track, in satisfaction units.

    Immediate experienced value if streamed, the cost of a skip otherwise, plus the expected
    progress towards a listening habit times what that habit brings (organic plays of an
    artist the listener values). ``openness`` is per user, (n,); ``worth`` per cell.
    """
    p = resp.p_stream
    enjoyed = resp.value > dyn.habit_enjoy_threshold
    progress = dyn.habit_gain * (1.0 + openness[:, None]) * (1.0 - resp.habit)
    habit_term = habit_weight * p * enjoyed * progress * worth
    return p * resp.value - (1.0 - p) * dyn.skip_cost + habit_term


def true_long_term_value(
    dyn: DynamicsParams,
    cat: Catalogue,
    pop: Population,
    users: np.ndarray,
    tracks: np.ndarray,
    habit_weight: float,
) -> np.ndarray:
    """State-free expected long-term value of (user, track) pairs, both (n,): the truth labels track."""
    resp = respond(dyn, cat, pop, None, users, tracks[:, None])
    worth = np.take_along_axis(habit_worth(dyn, cat, pop, users), cat.track_artist[tracks][:, None], axis=1)
    return long_term_value(dyn, resp, pop.openness[users], habit_weight, worth)[:, 0]
