"""The world's own policies: the logging policy and two oracles.

A policy is anything with ``policy_id`` and ``recommend(contexts) -> Slates``
(:mod:`components.protocol`). Policies that need the hidden truth (the oracles) also have
``bind(world)``; the A/B runner binds each arm's own world. The logging policy is the world's
stand-in for a production recommender: it uses a *noisy* estimate of taste, so it is
realistic, not an oracle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from components.params import LoggingPolicyParams
from components.protocol import Contexts, Slates
from components.world.catalogue import Catalogue, Population
from components.world.exact import dot, exp, top_k, unit_on_grid
from components.world.response import habit_worth, long_term_value, respond
from components.world.rng import stream

if TYPE_CHECKING:
    from components.world.dynamics import World

CLICK_ORACLE_ID = 901
LONG_TERM_ORACLE_ID = 902


class LoggingPolicy:
    """Retrieve a candidate pool per user, then sample a slate without replacement.

    Pool: the ``pool_size`` tracks with the highest noisy-affinity + popularity score.
    Slot ``j``: with probability ``exploration`` a uniformly random track not yet in the
    slate, else a Plackett-Luce draw from the remaining pool (softmax of the score /
    temperature). The logged propensity is the exact probability of the chosen track in
    its slot given the slots before it:
    ``(1-eps) * p(t) / (1 - sum of p over pool tracks already chosen) + eps / (T - j)``.
    """

    def __init__(
        self,
        params: LoggingPolicyParams,
        cat: Catalogue,
        pop: Population,
        seed: int,
        track_score: np.ndarray | None = None,
    ):
        """``track_score`` (T,): an extra per-track term in the ranking score (a variant's own model)."""
        self.params = params
        self.policy_id = params.policy_id
        self.seed = seed
        self.n_tracks = cat.n_tracks
        rng = stream(seed, 0, "logging_policy_taste")
        noise = rng.normal(size=pop.taste.shape) * params.taste_noise / np.sqrt(pop.taste.shape[1])
        est = pop.taste + noise
        est = unit_on_grid(est)
        self.pool, self.pool_logits = self._retrieve(est, cat, track_score)

    def _retrieve(
        self, taste_est: np.ndarray, cat: Catalogue, track_score: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        p, C = self.params, self.params.pool_size
        U = len(taste_est)
        pool = np.empty((U, C), np.int64)
        logits = np.empty((U, C), np.float32)
        for lo in range(0, U, 4096):
            score = p.affinity_weight * dot(taste_est[lo : lo + 4096], cat.track_vec)
            score += p.popularity_weight * cat.log_popularity[None, :]
            if track_score is not None:
                score += track_score[None, :]
            top = top_k(score, C)
            pool[lo : lo + 4096] = top
            logits[lo : lo + 4096] = np.take_along_axis(score, top, axis=1) / p.temperature
        return pool, logits

    def recommend(self, contexts: Contexts) -> Slates:
        rows = contexts.user_ids
        rng = stream(self.seed, contexts.day, "logging_policy")
        return sample_slates(
            self.pool[rows],
            self.pool_logits[rows],
            rng,
            contexts.slate_size,
            self.params.exploration,
            self.n_tracks,
        )

    def slot_probabilities(self, user: int, prefix: np.ndarray) -> np.ndarray:
        """(T,) probability of each track in the next slot, given the tracks already in the slate."""
        eps, T = self.params.exploration, self.n_tracks
        z = exp(self.pool_logits[user] - self.pool_logits[user].max())
        p_pool = np.zeros(T)
        p_pool[self.pool[user]] = z / z.sum(dtype=np.float64)
        chosen = np.asarray(prefix, dtype=np.int64)
        remaining = 1.0 - p_pool[chosen].sum()
        q = (1 - eps) * p_pool / max(remaining, 1e-12) + eps / (T - len(chosen))
        q[chosen] = 0.0
        return q


def sample_slates(
    pool: np.ndarray, logits: np.ndarray, rng: np.random.Generator, k: int, eps: float, n_tracks: int
) -> Slates:
    """Sample a slate per row from a candidate pool, with exact per-slot propensities.

    Slot ``j``: with probability ``eps`` a uniformly random track not yet in the slate, else a
    Plackett-Luce draw from the remaining pool (softmax of ``logits``; ``-inf`` marks padding).
    The propensity is the exact probability of the chosen track in its slot given the slots
    before it: ``(1-eps) * p(t) / (1 - sum of p over pool tracks already chosen) + eps / (T - j)``.
    """
    n, T = len(pool), n_tracks
    z = exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True, dtype=np.float64)  # (n, C) softmax over the pool
    # Plackett-Luce sampling without replacement as an exponential race: track i finishes at
    # E_i / z_i (E_i ~ Exp(1)), the same law as Gumbel-top-k on the logits (log of the race
    # time = Gumbel noise), without a log per pool entry. Reading the finishing order while
    # skipping tracks already in the slate stays exact. A slot reads at most one entry of the
    # order beyond those an explored track already took, so 2k entries always suffice.
    race = rng.standard_exponential(logits.shape, dtype=np.float32)
    with np.errstate(divide="ignore"):
        finish = np.where(z > 0, race / z, np.inf)  # padding (-inf logits) never finishes
    order = top_k(-finish, min(2 * k, logits.shape[1]))  # ties by position: the same on any CPU
    explore = rng.random((n, k)) < eps
    tracks = np.full((n, k), -1, np.int64)
    prop = np.empty((n, k), np.float64)
    used_mass = np.zeros(n)
    ptr = np.zeros(n, np.int64)
    all_rows = np.arange(n)
    for j in range(k):
        e = explore[:, j]
        pick = np.full(n, -1, np.int64)
        p_pool = np.zeros(n)
        er = all_rows[e]
        pick[er] = _uniform_unchosen(rng, tracks[er, :j], T)
        p_pool[er] = _pool_prob(pool[er], probs[er], pick[er])
        # pool branch: advance each row's pointer past tracks already in the slate
        pr = all_rows[~e]
        while len(pr):
            slot = order[pr, ptr[pr]]
            cand = pool[pr, slot]
            clash = (tracks[pr, :j] == cand[:, None]).any(axis=1)
            ok = pr[~clash]
            pick[ok], p_pool[ok] = cand[~clash], probs[ok, slot[~clash]]
            ptr[pr] += 1
            pr = pr[clash]
        prop[:, j] = (1 - eps) * p_pool / np.maximum(1.0 - used_mass, 1e-12) + eps / (T - j)
        used_mass += p_pool
        tracks[:, j] = pick
    return Slates(tracks=tracks, propensities=prop)


def _uniform_unchosen(rng: np.random.Generator, chosen: np.ndarray, n_tracks: int) -> np.ndarray:
    """One uniform track per row among those not in ``chosen`` (rejection; collisions are rare)."""
    pick = rng.integers(0, n_tracks, size=len(chosen))
    clash = (chosen == pick[:, None]).any(axis=1)
    while clash.any():
        pick[clash] = rng.integers(0, n_tracks, size=int(clash.sum()))
        clash = (chosen == pick[:, None]).any(axis=1)
    return pick


def _pool_prob(pool: np.ndarray, probs: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Softmax probability of each row's pick within its pool (0 if the pick is outside)."""
    match = pool == pick[:, None]
    return np.where(match.any(axis=1), probs[np.arange(len(pick)), match.argmax(axis=1)], 0.0)


class _Oracle:
    """Deterministic top-k by a truth-derived score; bind it to the world it acts in."""

    policy_id: int
    world: "World | None" = None

    def bind(self, world: "World") -> None:
        self.world = world

    def score(self, users: np.ndarray) -> np.ndarray:  # (n, T)
        raise NotImplementedError

    def recommend(self, contexts: Contexts) -> Slates:
        if self.world is None:
            raise RuntimeError(f"{type(self).__name__} reads the truth: bind(world) it first")
        k = contexts.slate_size
        out = np.empty((len(contexts.user_ids), k), np.int64)
        for lo in range(0, len(out), 4096):
            s = self.score(contexts.user_ids[lo : lo + 4096])
            out[lo : lo + 4096] = top_k(s, k)
        return Slates(tracks=out)


class ClickGreedyOracle(_Oracle):
    """Maximises the immediate stream probability, knowing taste, habits and fatigue."""

    policy_id = CLICK_ORACLE_ID

    def score(self, users: np.ndarray) -> np.ndarray:
        w = self.world
        return respond(w.params.dynamics, w.catalogue, w.population, w.state, users).p_stream


class LongTermOracle(_Oracle):
    """Maximises expected long-term value (experienced value + habit progress), knowing the truth."""

    policy_id = LONG_TERM_ORACLE_ID

    def score(self, users: np.ndarray) -> np.ndarray:
        w = self.world
        resp = respond(w.params.dynamics, w.catalogue, w.population, w.state, users)
        worth = habit_worth(w.params.dynamics, w.catalogue, w.population, users)[:, w.catalogue.track_artist]
        return long_term_value(
            w.params.dynamics, resp, w.population.openness[users], w.params.oracle.habit_weight, worth
        )
