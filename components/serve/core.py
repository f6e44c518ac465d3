"""The serving core: pure functions from a request batch to slates, propensities and log rows.

No HTTP, no threads, no registry: the FastAPI app (:mod:`components.serve.app`) and a
simulated serving loop call the same functions, so what is logged in simulation is what the
service logs.

- **Assignment** (:func:`assign_arm`): a listener's arm is a salted SHA-256 of their id mapped
  to [0, 1) and cut at the arms' cumulative shares, so the same listener is always in the
  same arm, on every replica, across restarts; a new salt reshuffles everyone.
- **Sampling** (:func:`sample_slates`): per slot, with probability ε a track uniformly among
  those still allowed (catalogue tracks not in the history, not already in the slate), else
  a sample of the constrained policy at temperature T (T = 0: its argmax). The propensity of
  what was served in slot j, given the slots above it, is exactly that mixture:
  ``p = (1 - ε) · π_T(track | prompt, slots < j) + ε / |allowed_j|``.
- **policy_id** (:func:`policy_id`): the contract's int64 ``policy_id`` of a served slate, in
  decimal digits ``<experiment><arm:2><version:4>``.
- **Log rows** (:func:`impression_rows`): one row per served track (see ``docs/serving.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from components.contract import MAX_ID
from components.params import ServeExperimentParams
from components.policy.vocab import ItemVocab
from components.sequences import right_aligned
from components.serve.decoder import Decoder

# policy_id = experiment * 10**6 + (arm index + 1) * 10**4 + registered version
ARM_DIGITS, VERSION_DIGITS = 100, 10_000
MAX_EXPERIMENT_ID = MAX_ID // (ARM_DIGITS * VERSION_DIGITS) - 1  # keeps every policy_id < 2**53


class ServeError(ValueError):
    """A request the service cannot answer as asked (the app turns it into a 4xx)."""


# --------------------------------------------------------------------------- assignment


def assignment_point(salt: str, user_id: int) -> float:
    """The listener's fixed point in [0, 1): the first 8 bytes of SHA-256("salt:user_id")."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arm(user_id: int, experiment: ServeExperimentParams) -> int:
    """Index of the listener's arm in ``experiment.arms`` (cumulative shares cut [0, 1))."""
    u = assignment_point(experiment.salt, user_id)
    edges = np.cumsum([a.share for a in experiment.arms])
    return min(int(np.searchsorted(edges, u, side="right")), len(edges) - 1)


def policy_id(experiment_id: int, arm: int, version: int) -> int:
    """The contract's ``policy_id`` of slates served by registered ``version`` in arm ``arm``
    (0-based) of ``experiment_id``: ``experiment_id * 10**6 + (arm + 1) * 10**4 + version``,
    e.g. experiment 15, arm 0, version 7 -> 15_01_0007. Unique per (experiment, arm, version),
    readable in a log, far from the simulator's small policy ids, below 2**53."""
    if not 0 <= arm < ARM_DIGITS - 1:
        raise ServeError(f"arm index {arm}: at most {ARM_DIGITS - 1} arms fit a policy_id")
    if not 0 < version < VERSION_DIGITS:
        raise ServeError(f"registered version {version}: policy_id holds versions 1..{VERSION_DIGITS - 1}")
    if not 0 < experiment_id <= MAX_EXPERIMENT_ID:
        raise ServeError(f"experiment id {experiment_id}: must be in [1, {MAX_EXPERIMENT_ID}]")
    return (experiment_id * ARM_DIGITS + arm + 1) * VERSION_DIGITS + version


def parse_policy_id(pid: int) -> tuple[int, int, int]:
    """(experiment id, arm index, version) of a :func:`policy_id`."""
    rest, version = divmod(int(pid), VERSION_DIGITS)
    experiment, arm = divmod(rest, ARM_DIGITS)
    return experiment, arm - 1, version


# --------------------------------------------------------------------------- prompts


def prompts(
    vocab: ItemVocab, features: dict[str, list], histories: Sequence[Sequence[int] | None]
) -> tuple[np.ndarray, np.ndarray]:
    """(prompt ids (n, prompt_length), cold start (n,) bool) for one batch.

    ``features``: the online store's answer (feature name -> one value per listener, None
    when unknown), with ``recent_tracks``; ``histories``: the recent plays each request
    brought (most recent last), or None to use the store's ``recent_tracks``. A listener the
    store does not know (every prompt feature None) is a cold start: null buckets, and the
    history of the request (or none)."""
    n = len(histories)
    frame = pl.DataFrame({f: pl.Series(f, features[f], dtype=pl.Float64) for f in vocab.features})
    stored = features.get("recent_tracks") or [None] * n
    lists = [list(h) if h is not None else (stored[i] or []) for i, h in enumerate(histories)]
    cold = np.array([all(features[f][i] is None for f in vocab.features) for i in range(n)])
    hist = right_aligned(pl.Series("h", lists, dtype=pl.List(pl.Int64)), vocab.history_length)
    return vocab.prompts(frame, hist), cold


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class Slates:
    """A batch of served slates: token ids, what they were served with, and the probabilities."""

    tokens: np.ndarray  # (n, k) token ids
    propensity: np.ndarray  # (n, k) P(this track in this slot | slots above), under what was served
    policy_probability: np.ndarray  # (n, k) π_T of that track in that slot (the policy alone)
    explored: np.ndarray  # (n, k) bool: the slot was filled by the uniform draw


def sample_slates(
    decoder: Decoder,
    non_track: torch.Tensor,
    prompts: np.ndarray,
    k: int,
    temperature: float,
    epsilon: float,
    generator: torch.Generator,
) -> Slates:
    """Sample ``k`` slots per prompt from the ε-mixture of the constrained policy and uniform.

    ``non_track``: (vocab,) bool, the tokens a slate may never hold. Per slot j the allowed
    tracks are the catalogue minus the prompt's tokens minus slots < j; with probability
    ``epsilon`` the slot is uniform over them, else a draw from softmax(logits / T) over them
    (inverse CDF: one uniform per row), or its argmax at T = 0. The propensity is read from
    the same probabilities the draw used. Call under ``torch.inference_mode()``.
    """
    ids = torch.from_numpy(prompts)
    n = len(ids)
    banned = non_track.repeat(n, 1)
    banned.scatter_(1, ids, True)
    allowed = (~banned).sum(dim=1).double()  # tracks slot 0 may hold; one fewer per slot after
    logits = decoder.prefill(ids)
    rows = torch.arange(n)
    tokens = torch.empty((n, k), dtype=torch.long)
    prop = torch.empty((n, k), dtype=torch.float64)
    pi = torch.empty((n, k), dtype=torch.float64)
    explored = torch.zeros((n, k), dtype=torch.bool)
    for j in range(k):
        masked = logits.masked_fill_(banned, -torch.inf)
        if temperature > 0:
            probs = torch.softmax(masked if temperature == 1 else masked / temperature, dim=-1)
            pick = _inverse_cdf(probs, generator)
            p = probs[rows, pick].double()
        else:
            pick = masked.argmax(dim=-1)
            p = torch.ones(n, dtype=torch.float64)
        if epsilon > 0:
            explore = torch.rand(n, generator=generator) < epsilon
            if explore.any():  # uniform over the allowed tracks, drawn for the exploring rows only
                free = (~banned[explore]).float()
                uniform = _inverse_cdf(free, generator)
                if temperature > 0:
                    p[explore] = probs[explore].gather(1, uniform[:, None])[:, 0].double()
                else:
                    p[explore] = (uniform == pick[explore]).double()
                pick[explore] = uniform
            explored[:, j] = explore
        pi[:, j] = p
        prop[:, j] = (1 - epsilon) * p + epsilon / allowed
        tokens[:, j] = pick
        banned[rows, pick] = True
        allowed -= 1
        if j + 1 < k:
            logits = decoder.step(pick)
    return Slates(tokens.numpy(), prop.numpy(), pi.numpy(), explored.numpy())


def _inverse_cdf(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row, index i with probability weights[i] / row sum (zero weights never)."""
    cdf = weights.cumsum(dim=-1)  # non-decreasing, flat over zero weights
    u = (1 - torch.rand((len(cdf), 1), generator=generator, dtype=cdf.dtype)) * cdf[:, -1:]  # (0, total]
    # the first index whose cumulative weight reaches u: one that adds weight, never past the end
    return torch.searchsorted(cdf, u)[:, 0]


def allowed_counts(vocab: ItemVocab, prompts: np.ndarray) -> np.ndarray:
    """(n, k) how many tracks slot j could hold: the catalogue minus the distinct catalogue
    tracks in the prompt minus j. The ε-uniform part of a propensity is ε over this."""
    track_tokens = np.isin(prompts, vocab.track_token_ids)
    in_prompt = np.array([len(set(row[mask].tolist())) for row, mask in zip(prompts, track_tokens)])
    return len(vocab.track_ids) - in_prompt[:, None] - np.arange(vocab.slate_size)[None, :]


# --------------------------------------------------------------------------- log rows


@dataclass(frozen=True)
class Served:
    """What one batch served, per request: the metadata a log row needs beside the slates."""

    request_ids: list[str]
    user_ids: np.ndarray  # (n,)
    ts_us: int  # when the batch was served: microseconds since 1970 UTC
    arm: list[str]
    alias: list[str]
    version: np.ndarray  # (n,) registered version
    policy_id: np.ndarray  # (n,)
    cold_start: np.ndarray  # (n,) bool


def impression_rows(
    served: Served, tracks: np.ndarray, slates: Slates, experiment_id: int, temperature: float, epsilon: float
) -> dict[str, np.ndarray | list]:
    """Column arrays of the served-impressions log: one row per (slate, position).

    The contract's impression columns the service knows (``user_id``, ``ts``, ``position``,
    ``track_id``, ``policy_id``, ``propensity``), the outcome columns empty until feedback, and
    what a later join or audit needs (``request_id``, arm, alias, version, π_T, exploration).
    ``event_id``, ``session_id`` and ``artist_id`` are assigned when the parts are exported
    (:mod:`components.serve.export`)."""
    n, k = tracks.shape

    def per_row(values) -> np.ndarray:
        return np.repeat(np.asarray(values), k)

    return {
        "request_id": per_row(served.request_ids),
        "user_id": per_row(served.user_ids).astype(np.int64),
        "ts": np.full(n * k, served.ts_us, dtype=np.int64),
        "position": np.tile(np.arange(k, dtype=np.int64), n),
        "track_id": tracks.reshape(-1).astype(np.int64),
        "policy_id": per_row(served.policy_id).astype(np.int64),
        "propensity": slates.propensity.reshape(-1),
        "policy_probability": slates.policy_probability.reshape(-1),
        "explored": slates.explored.reshape(-1),
        "experiment_id": np.full(n * k, experiment_id, dtype=np.int64),
        "arm": per_row(served.arm),
        "alias": per_row(served.alias),
        "model_version": per_row(served.version).astype(np.int64),
        "temperature": np.full(n * k, temperature),
        "epsilon": np.full(n * k, epsilon),
        "cold_start": per_row(served.cold_start).astype(bool),
    }


def track_lookup(vocab: ItemVocab) -> Callable[[np.ndarray], np.ndarray]:
    """A fast token id -> track id map (-1 for non-tracks) for a bound vocabulary."""
    table = np.full(vocab.vocab_size, -1, dtype=np.int64)
    table[vocab.track_token_ids] = vocab.track_ids
    return lambda tokens: table[tokens]


def non_track_mask(vocab: ItemVocab) -> torch.Tensor:
    """(vocab,) bool: True for every token a slate may not hold."""
    mask = torch.ones(vocab.vocab_size, dtype=torch.bool)
    mask[torch.from_numpy(np.asarray(vocab.track_token_ids))] = False
    return mask
