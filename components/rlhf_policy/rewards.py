"""The RL reward: the reward model's score of a generated slate for that listener.

A GRPO reward function gets the completions' token ids plus the prompt dataset's extra
columns (``user_id``, ``history``). The slate's reward is the mean reward-model score of its
tracks. Observers (e.g. the evaluation code's truth watch) see every scored batch and log
their own metrics next to the proxy reward.

Each step also logs how concentrated the policy's slates are (the over-optimisation watch's
early warning: a per-item reward can be gamed by stacking slates with a few artists) — per
slate, the share of distinct genres and artists; over the step's batch, the share of distinct
tracks and the effective number of artists (exp of the entropy of the artist mix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from components.policy.vocab import ItemVocab
from components.reward.model import RewardModel

Observer = Callable[
    [np.ndarray, np.ndarray, np.ndarray], dict[str, float]
]  # (users, slates, proxy) -> metrics


class SlateReward:
    """Callable with GRPO's reward-function signature."""

    __name__ = "slate_reward"

    def __init__(
        self,
        model: RewardModel,
        vocab: ItemVocab,
        genre_of_track: dict[int, int],
        artist_of_track: dict[int, int],
        invalid_reward: float,
        observers: Sequence[Observer] = (),
    ):
        self.model, self.vocab = model, vocab
        self.genre_of, self.artist_of = genre_of_track, artist_of_track
        self.invalid_reward = invalid_reward
        self.observers = list(observers)
        self.invalid_count = 0

    def __call__(
        self, prompts, completions, completion_ids, user_id, history, log_metric=None, **_
    ) -> list[float]:
        k = self.vocab.slate_size
        ids = np.full((len(completion_ids), k), -1, dtype=np.int64)
        for i, c in enumerate(completion_ids):
            ids[i, : min(k, len(c))] = c[:k]
        slates = self.vocab.token_to_track(ids)
        users = np.asarray(user_id, dtype=np.int64)
        valid = self._valid(slates, history)
        reward = np.full(len(slates), self.invalid_reward, dtype=np.float64)
        if valid.any():
            scores = self.model.score(
                users[valid], slates[valid], histories=[history[i] for i in np.flatnonzero(valid)]
            )
            reward[valid] = scores.mean(axis=1)
        self.invalid_count += int((~valid).sum())
        if log_metric is not None:
            log_metric("slates/valid_rate", float(valid.mean()))
            log_metric("slates/genre_diversity", self.diversity(slates[valid]))
            for name, value in self.concentration(slates[valid]).items():
                log_metric(f"slates/{name}", value)
            for observer in self.observers:
                for name, value in observer(users[valid], slates[valid], reward[valid]).items():
                    log_metric(name, value)
        return reward.tolist()

    def _valid(self, slates: np.ndarray, history: list[list[int]]) -> np.ndarray:
        """k distinct catalogue tracks, none from the prompt's history (the decoder guarantees it;
        we check)."""
        srt = np.sort(slates, axis=1)
        ok = (slates >= 0).all(axis=1) & (srt[:, 1:] != srt[:, :-1]).all(axis=1)
        return ok & np.array([not set(s.tolist()) & set(h) for s, h in zip(slates, history)])

    def diversity(self, slates: np.ndarray) -> float:
        """Mean share of distinct genres in a slate (1 = every track from another genre)."""
        return _distinct_share_per_row(slates, self.genre_of)

    def concentration(self, slates: np.ndarray) -> dict[str, float]:
        """How narrow a batch of slates is: ``artist_diversity`` (distinct artists per slate / k),
        ``distinct_share`` (distinct tracks among all the batch's items: low when every listener
        gets the same tracks) and ``effective_artists`` (exp of the entropy of the batch's artist
        mix: the number of equally served artists it amounts to)."""
        if not len(slates):
            return {
                "artist_diversity": float("nan"),
                "distinct_share": float("nan"),
                "effective_artists": float("nan"),
            }
        artists = np.vectorize(self.artist_of.get, otypes=[np.int64])(slates).ravel()
        share = np.unique(artists, return_counts=True)[1] / artists.size
        return {
            "artist_diversity": _distinct_share_per_row(slates, self.artist_of),
            "distinct_share": float(np.unique(slates).size / slates.size),
            "effective_artists": float(np.exp(-(share * np.log(share)).sum())),
        }


def _distinct_share_per_row(slates: np.ndarray, group_of: dict[int, int]) -> float:
    """Mean over slates of (distinct groups in the slate) / k."""
    if not len(slates):
        return float("nan")
    groups = np.vectorize(group_of.get, otypes=[np.int64])(slates)
    return float(np.mean([len(set(g)) / len(g) for g in groups]))
