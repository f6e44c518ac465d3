"""A policy as an A/B arm, served exactly as the policy service serves it.

The simulated A/B test measures the truth of what would be *served*: the same sampler as
:mod:`components.serve` (ε-uniform exploration over temperature sampling, the service's decoder),
the listener's features from the lookup the online store would answer, the recent plays the
request would bring.
"""

from __future__ import annotations

import numpy as np
import torch

from components.featurestore.lookup import FeatureLookup
from components.policy.generative import GenerativePolicy
from components.policy.vocab import ItemVocab
from components.protocol import Contexts, Slates
from components.sampler.ranked import rank_slates
from components.sampler.sampling import Sampler


class ServedPolicy(GenerativePolicy):
    """Slates drawn through the serving sampler (on the CPU, as the service runs), seeded per day,
    with the propensity the service logs for each slot."""

    def __init__(
        self,
        model,
        vocab: ItemVocab,
        lookup: FeatureLookup,
        policy_id: int,
        seed: int,
        temperature: float,
        epsilon: float,
    ):
        super().__init__(model, vocab, lookup, policy_id, seed, sample=True, temperature=temperature)
        self.epsilon = epsilon
        self.sampler = Sampler.of(model, vocab)

    def recommend(self, contexts: Contexts) -> Slates:
        prompts = self.prompts(contexts.user_ids, contexts.history)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + int(contexts.day))
        drawn = self.sampler.sample(prompts, self.temperature, self.epsilon, generator)
        return Slates(self.sampler.to_track(drawn.tokens), drawn.propensity)


class RankedPolicy(GenerativePolicy):
    """Generate-then-rank as an A/B arm (:mod:`components.sampler.ranked`): ``draws`` slates sampled
    through the serving sampler, ranked by ``reward`` (a :class:`~components.reward.model.RewardModel`
    with its lookup) in the listener's live context — the recent plays of the request."""

    def __init__(
        self,
        model,
        vocab: ItemVocab,
        lookup: FeatureLookup,
        reward,
        policy_id: int,
        seed: int,
        draws: int,
        temperature: float,
        epsilon: float,
    ):
        super().__init__(model, vocab, lookup, policy_id, seed, sample=True, temperature=temperature)
        self.reward, self.draws, self.epsilon = reward, draws, epsilon
        self.sampler = Sampler.of(model, vocab)

    def recommend(self, contexts: Contexts) -> Slates:
        prompts = self.prompts(contexts.user_ids, contexts.history)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + int(contexts.day))
        score = history_scorer(self.reward, contexts.user_ids, contexts.history)
        ranked = rank_slates(
            self.sampler, prompts, score, self.draws, self.temperature, self.epsilon, generator
        )
        return Slates(self.sampler.to_track(ranked.tokens))


def history_scorer(reward, user_ids: np.ndarray, histories: np.ndarray):
    """The reward model as a ranker for one batch of requests (a
    :data:`~components.sampler.ranked.Scorer`): scores (row, track) pairs for these listeners with
    their recent plays (``histories`` (n, h) right-aligned, ``-1`` padding)."""
    import polars as pl

    user_ids = np.asarray(user_ids, dtype=np.int64)
    recent = pl.Series(
        [[int(t) for t in row if t >= 0] for row in np.asarray(histories)], dtype=pl.List(pl.Int64)
    )

    def score(rows: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        return reward.score(user_ids[rows], tracks[:, None], histories=recent.gather(rows))[:, 0]

    return score
