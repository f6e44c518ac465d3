"""Generate-then-rank: the policy proposes candidates, the reward model picks the slate.

Why: RL against the reward model concentrates the policy on the model's argmax (a few artists,
3-6 % of the catalogue), and sampling the policy alone spreads it without using what the reward
model knows. Ranking the policy's own samples does both: the policy keeps the candidates in its
neighbourhood (where the reward model was trained), the sampling keeps them diverse, the reward
model orders them. Measured in all four robustness worlds in docs/loop.md.

One request: ``draws`` slates are sampled from the constrained policy at temperature T
(:class:`~components.sampler.sampling.Sampler`, no exploration), their distinct tracks are
scored by the reward model in the listener's context, and the slate is filled slot by slot:
with probability ε a uniform draw among the allowed tracks (as the sampler explores), else the
best-scored candidate not yet in the slate.

Propensities have no closed form (a slot is the best of a random candidate set). Given one
candidate set m, the slate's slots are exact: slot l holds the logged track with probability
``q_ml = (1 - ε) · [best candidate outside the slots above is that track] + ε / |allowed_l|``, and
the slate up to slot j with ``J_mj = ∏_{l ≤ j} q_ml``. Averaging over M independent candidate sets
estimates the probability of each prefix; a slot's propensity — its probability given the slots
above, what the estimators read — is the ratio of consecutive prefixes,
``p_j = mean_m J_mj / mean_m J_m,j-1`` (:func:`slot_probabilities`). Slot 0's is the plain
Monte-Carlo share; later slots are conditioned on what the earlier ones say about the set.
The service would log it from ``propensity_draws`` fresh sets (not the served one: that would
bias every logged propensity up); off-policy evaluation reads a ranked target's probabilities
of *logged* slates the same way. With ε = 0 a slot no fresh set reproduces reads 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from components.sampler.sampling import Sampler, _inverse_cdf

# the reward model on a batch of requests: (rows, tracks) -> one score per pair; rows index the
# batch's listeners (their features and recent plays), tracks are track ids
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
# sampled slates per decoding batch: bounds the K/V cache (~35 kB a row at the default size)
DECODE_ROWS = 4096


@dataclass(frozen=True)
class RankedSlates:
    """A batch of ranked slates, in token ids, with what the service would log for them."""

    tokens: np.ndarray  # (n, k) token ids
    explored: np.ndarray  # (n, k) bool: the slot was filled by the uniform draw
    propensity: np.ndarray | None  # (n, k) P(track in slot | slots above); None when not asked


def draw_candidates(
    sampler: Sampler, prompts: np.ndarray, draws: int, temperature: float, generator, sets: int = 1
) -> list[np.ndarray]:
    """``sets`` candidate sets, each (n, draws·k) token ids: ``draws`` slates sampled per prompt,
    side by side. Every draw of every set is one row of a single decoding batch (in chunks of
    ``DECODE_ROWS``): a request's 16 Monte-Carlo sets of 3 slates decode as 48 rows at once, not
    48 batches of one — the decoder's cost is per step, far more than per row, on a CPU."""
    n = len(prompts)
    rows = np.tile(prompts, (sets * draws, 1))  # block b = (set b // draws, draw b % draws)
    tokens = np.concatenate(
        [
            sampler.sample(rows[lo : lo + DECODE_ROWS], temperature, 0.0, generator).tokens
            for lo in range(0, len(rows), DECODE_ROWS)
        ]
    ).reshape(sets, draws, n, -1)
    return [np.concatenate(list(tokens[s]), axis=1) for s in range(sets)]


def score_distinct(sampler: Sampler, score: Scorer, cands: np.ndarray) -> np.ndarray:
    """(n, c) the reward model's score of every candidate token, each distinct (row, track)
    scored once — the reward model is the cost of ranking, and a policy's samples repeat tracks
    (within a request's draws, and across the Monte-Carlo candidate sets far more)."""
    n = len(cands)
    width = int(cands.max()) + 1
    keys = (np.arange(n, dtype=np.int64)[:, None] * width + cands).ravel()
    pairs, inverse = np.unique(keys, return_inverse=True)
    scores = np.asarray(score(pairs // width, sampler.to_track(pairs % width)), dtype=np.float64)
    return scores[inverse].reshape(cands.shape)


def order_candidates(cands: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(n, c) the distinct candidates of each row, best score first (ties: the earlier draw),
    ``-1`` padding where a track repeated."""
    scores = scores.copy()
    repeated = _repeats(cands)
    scores[repeated] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(cands, order, axis=1)
    ranked[np.take_along_axis(repeated, order, axis=1)] = -1
    return ranked


def ranked_candidate_sets(
    sampler: Sampler, prompts: np.ndarray, score: Scorer, draws: int, temperature: float, sets: int, generator
) -> list[np.ndarray]:
    """``sets`` independent candidate sets per prompt, each (n, draws·k) token ids: the distinct
    tracks of ``draws`` sampled slates, best reward-model score first, ``-1`` padding where a track
    repeated. The reward model is called once for all sets."""
    cands = draw_candidates(sampler, prompts, draws, temperature, generator, sets)
    scores = np.split(score_distinct(sampler, score, np.concatenate(cands, axis=1)), sets, axis=1)
    return [order_candidates(c, sc) for c, sc in zip(cands, scores)]


def rank_slates(
    sampler: Sampler,
    prompts: np.ndarray,
    score: Scorer,
    draws: int,
    temperature: float,
    epsilon: float,
    generator: torch.Generator,
    propensity_draws: int = 0,
) -> RankedSlates:
    """Serve one ranked slate per prompt (see the module doc); with ``propensity_draws`` > 0 also
    the Monte-Carlo propensity of every served slot (the service and the loop log it; the A/B
    test, which only needs the slates, skips the extra decoding)."""
    if draws < 1:
        raise ValueError(f"generate-then-rank needs at least one sampled slate per request, got {draws}")
    with torch.inference_mode():
        ranked = ranked_candidate_sets(sampler, prompts, score, draws, temperature, 1, generator)[0]
        n, k = len(prompts), sampler.slate_size
        banned = sampler.non_track.repeat(n, 1)
        banned.scatter_(1, torch.from_numpy(prompts), True)
        allowed = (~banned).sum(dim=1).numpy().astype(np.float64)
        rows = np.arange(n)
        tokens = np.empty((n, k), dtype=np.int64)
        explored = np.zeros((n, k), dtype=bool)
        free = ranked >= 0
        for j in range(k):
            pick = ranked[rows, free.argmax(axis=1)]  # the best candidate not yet served
            if epsilon > 0:
                explore = (torch.rand(n, generator=generator) < epsilon).numpy()
                if explore.any():
                    pick[explore] = _inverse_cdf(
                        (~banned[torch.from_numpy(explore)]).float(), generator
                    ).numpy()
                explored[:, j] = explore
            tokens[:, j] = pick
            banned[torch.from_numpy(rows), torch.from_numpy(pick)] = True
            free &= ranked != pick[:, None]
        propensity = None
        if propensity_draws > 0:
            redraws = ranked_candidate_sets(
                sampler, prompts, score, draws, temperature, propensity_draws, generator
            )
            slots_allowed = allowed[:, None] - np.arange(k)[None, :]
            propensity = slot_probabilities(redraws, tokens, slots_allowed, epsilon)
    return RankedSlates(tokens, explored, propensity)


def ranked_probabilities(
    sampler: Sampler,
    prompts: np.ndarray,
    score: Scorer,
    slates: np.ndarray,
    allowed: np.ndarray,
    draws: int,
    temperature: float,
    epsilon: float,
    candidate_sets: int,
    generator: torch.Generator,
) -> np.ndarray:
    """(n, k) the ranked policy's probability of ``slates[:, j]`` (track ids: logged slates) in
    slot j given the slots above — what off-policy estimates need of a target policy — from
    ``candidate_sets`` fresh candidate sets (:func:`slot_probabilities`); ``allowed`` (n, k): how
    many tracks slot j could hold."""
    with torch.inference_mode():
        sets = ranked_candidate_sets(sampler, prompts, score, draws, temperature, candidate_sets, generator)
    sets = [_as_tracks(sampler, ranked) for ranked in sets]
    return slot_probabilities(sets, slates, allowed, epsilon)


def slot_probabilities(
    candidate_sets: list[np.ndarray], slates: np.ndarray, allowed: np.ndarray, epsilon: float
) -> np.ndarray:
    """(n, k) the probability of ``slates[:, j]`` in slot j given the slots above, estimated from
    independent candidate sets (each (n, c), best first, ``-1`` = none): the ratio of the mean
    probabilities of consecutive prefixes (module doc), so that the slots' product is the
    Monte-Carlo probability of the whole slate. ``allowed`` (n, k): the tracks slot j could hold.
    0 where no set gives the slots above any probability (ε = 0)."""
    q = np.stack(
        [(1 - epsilon) * next_pick_hits(ranked, slates) + epsilon / allowed for ranked in candidate_sets]
    )
    prefix = np.cumprod(q, axis=2).mean(axis=0)  # (n, k): P(slots 0..j)
    above = np.concatenate([np.ones((len(slates), 1)), prefix[:, :-1]], axis=1)
    return np.divide(prefix, above, out=np.zeros_like(prefix), where=above > 0)


def next_pick_hits(ranked: np.ndarray, slates: np.ndarray) -> np.ndarray:
    """(n, k) bool: is the best candidate of ``ranked`` (n, c; best first, ``-1`` = none) outside
    ``slates[:, :j]`` the track ``slates[:, j]``? — does this candidate set, ranked without
    exploration, fill slot j with that track given the slots above. Any id space works, as long
    as the candidates and the slates share it."""
    k = slates.shape[1]
    slot = np.full(ranked.shape, k)  # each candidate's slot in the slate (k: not in it)
    for j in range(k):
        slot[ranked == slates[:, j : j + 1]] = j
    # at slot j a candidate is still free if it is one and is not in the slots above j
    free = (ranked >= 0)[:, None, :] & (slot[:, None, :] >= np.arange(k)[None, :, None])  # (n, k, c)
    best = np.take_along_axis(ranked, free.argmax(axis=2), axis=1)  # (n, k)
    return free.any(axis=2) & (best == slates)


def _repeats(cands: np.ndarray) -> np.ndarray:
    """(n, c) bool: True where a row's value already appeared earlier in that row."""
    order = np.argsort(cands, axis=1, kind="stable")
    srt = np.take_along_axis(cands, order, axis=1)
    dup_sorted = np.concatenate([np.zeros((len(cands), 1), bool), srt[:, 1:] == srt[:, :-1]], axis=1)
    out = np.zeros_like(cands, dtype=bool)
    np.put_along_axis(out, order, dup_sorted, axis=1)
    return out


def _as_tracks(sampler: Sampler, ranked: np.ndarray) -> np.ndarray:
    """Candidate token ids -> track ids, ``-1`` (no candidate) kept."""
    return np.where(ranked >= 0, sampler.to_track(np.maximum(ranked, 0)), -1)
