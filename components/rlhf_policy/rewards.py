"""The RL reward: the reward model's score of a generated slate for that listener.

A GRPO reward function gets the completions' token ids plus the prompt dataset's extra
columns (``user_id``, ``history``). The slate's reward is the mean reward-model score of its
tracks. Observers (e.g. the evaluation code's truth watch) see every scored batch and log
their own metrics next to the proxy reward.
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
        invalid_reward: float,
        observers: Sequence[Observer] = (),
    ):
        self.model, self.vocab = model, vocab
        self.genre_of = genre_of_track
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
        if not len(slates):
            return float("nan")
        genres = np.vectorize(self.genre_of.get, otypes=[np.int64])(slates)
        return float(np.mean([len(set(g)) / len(g) for g in genres]))
