"""Production-like policies for the experiment library: what a team might have shipped and A/B-tested.

Each arm is a cousin of the logging policy (same retrieval, same Plackett-Luce sampling with
exploration, exact propensities), never an oracle: it sees what the logging policy sees — a
*noisy* estimate of taste, popularity, the listener's own recent plays — and the ``ctr_model``
arm adds a noisy estimate of immediate appeal, which is what a click-trained production model
learns. They differ in the ways real ranking changes differ, so their long-term outcomes spread:

- ``logging``: the logging policy with knobs changed (affinity vs popularity, temperature,
  exploration, pool size, a better or worse taste model);
- ``ctr_model``: also ranks by estimated immediate appeal (``strength`` x catchiness + noise);
- ``repeat``: puts the listener's recent tracks into the pool and boosts recently played artists;
- ``discovery``: boosts artists absent from the listener's recent plays.
"""

from __future__ import annotations

import numpy as np

from components.params import ArmParams, LoggingPolicyParams
from components.protocol import Contexts, Slates
from components.world.catalogue import Catalogue, Population
from components.world.policies import LoggingPolicy, sample_slates
from components.world.rng import stream

KNOBS = ("affinity_weight", "popularity_weight", "temperature", "exploration", "pool_size", "taste_noise")
CTR_NOISE = 0.7  # error of the click model's estimate of catchiness (standard deviations)


class ArmPolicy(LoggingPolicy):
    """A logging-policy variant; ``recommend`` reweights each listener's pool by their recent plays."""

    def __init__(self, arm: ArmParams, base: LoggingPolicyParams, cat: Catalogue, pop: Population, seed: int):
        knobs = {k: getattr(arm, k) for k in KNOBS if getattr(arm, k) is not None}
        knobs["pool_size"] = min(
            knobs.get("pool_size", base.pool_size), cat.n_tracks
        )  # a small catalogue caps it
        params = base.model_copy(update={**knobs, "policy_id": arm.policy_id})
        score = None
        if arm.kind == "ctr_model":
            noise = stream(seed, 0, f"arm_{arm.policy_id}_ctr").normal(size=cat.n_tracks)
            score = arm.strength * (cat.catchiness + CTR_NOISE * noise)
        super().__init__(params, cat, pop, seed, track_score=score)
        self.arm = arm
        self.track_artist = cat.track_artist

    def recommend(self, contexts: Contexts) -> Slates:
        rows = contexts.user_ids
        pool, logits = self.pool[rows], self.pool_logits[rows]
        if self.arm.kind == "repeat":
            pool, logits = self._with_recent(pool, logits, contexts.history, self.arm.strength)
        elif self.arm.kind == "discovery":
            logits = logits + self.arm.strength * ~self._recent_artist(pool, contexts.history)
        rng = stream(self.seed, contexts.day, f"arm_{self.policy_id}")
        return sample_slates(pool, logits, rng, contexts.slate_size, self.params.exploration, self.n_tracks)

    def _recent_artist(self, pool: np.ndarray, history: np.ndarray) -> np.ndarray:
        """(n, C) whether each pool track's artist is among the listener's recent plays."""
        heard = np.where(history >= 0, self.track_artist[np.maximum(history, 0)], -1)  # (n, H)
        artists = self.track_artist[pool]
        return (artists[:, :, None] == heard[:, None, :]).any(axis=2)

    def _with_recent(
        self, pool: np.ndarray, logits: np.ndarray, history: np.ndarray, boost: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pool plus the listener's recent tracks (at the pool's best score + ``boost``), and
        recently played artists boosted; duplicates and empty history slots are padding (-inf)."""
        recent = self._recent_artist(pool, history)
        logits = logits + boost * recent
        top = logits.max(axis=1, keepdims=True)
        extra = history.copy()
        in_pool = (extra[:, :, None] == pool[:, None, :]).any(axis=2)
        repeated = _later_duplicates(extra)
        padding = (extra < 0) | in_pool | repeated
        extra_logits = np.where(padding, -np.inf, np.broadcast_to(top, extra.shape)).astype(np.float32)
        return np.concatenate([pool, np.where(padding, -1, extra)], axis=1), np.concatenate(
            [logits.astype(np.float32), extra_logits], axis=1
        )


def _later_duplicates(x: np.ndarray) -> np.ndarray:
    """(n, m) True where a value already appeared earlier in its row."""
    order = np.argsort(x, axis=1, kind="stable")
    srt = np.take_along_axis(x, order, axis=1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    out = np.zeros_like(dup_sorted)
    np.put_along_axis(out, order, dup_sorted, axis=1)
    return out


def library_policies(
    arms: list[ArmParams], base: LoggingPolicyParams, cat: Catalogue, pop: Population, seed: int
) -> dict[str, LoggingPolicy]:
    """``{"control": the logging policy, <arm name>: its variant, ...}`` in the order given."""
    out: dict[str, LoggingPolicy] = {"control": LoggingPolicy(base, cat, pop, seed)}
    for arm in arms:
        out[arm.name] = ArmPolicy(arm, base, cat, pop, seed)
    return out
