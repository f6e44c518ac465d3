"""The serving core: pure functions from a request batch to slates, propensities and log rows.

No HTTP, no threads, no registry: the FastAPI app (:mod:`components.serve.app`) and a
simulated serving loop call the same functions, so what is logged in simulation is what the
service logs.

- **Assignment** (:func:`assign_arm`): a listener's arm is a salted SHA-256 of their id mapped
  to [0, 1) and cut at the arms' cumulative shares, so the same listener is always in the
  same arm, on every replica, across restarts; a new salt reshuffles everyone.
- **Sampling** (:mod:`components.sampler.sampling`, shared with the simulated A/B test and the
  off-policy estimates of the served policy): per slot, with probability ε a track uniformly
  among those still allowed, else a sample of the constrained policy at temperature T, and the
  propensity of exactly that mixture.
- **policy_id** (:func:`policy_id`): the contract's int64 ``policy_id`` of a served slate, in
  decimal digits ``<experiment><arm:2><version:4>``.
- **Log rows** (:func:`impression_rows`): one row per served track (see ``docs/serving.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from components.contract import MAX_ID
from components.params import ServeExperimentParams
from components.policy.vocab import ItemVocab
from components.sampler.sampling import SampledSlates
from components.sequences import right_aligned

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
    cold = np.array([all(features[f][i] is None for f in vocab.features) for i in range(n)])
    return vocab.prompts(frame, request_histories(features, histories, vocab.history_length)), cold


def request_histories(
    features: dict[str, list], histories: Sequence[Sequence[int] | None], length: int
) -> np.ndarray:
    """(n, length) recent plays of each request, right-aligned with ``-1`` padding: the ones the
    request brought, else the store's ``recent_tracks`` (what :func:`prompts` builds on)."""
    stored = features.get("recent_tracks") or [None] * len(histories)
    lists = [list(h) if h is not None else (stored[i] or []) for i, h in enumerate(histories)]
    return right_aligned(pl.Series("h", lists, dtype=pl.List(pl.Int64)), length)


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
    served: Served,
    tracks: np.ndarray,
    slates: SampledSlates,
    experiment_id: int,
    temperature: float,
    epsilon: float,
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
