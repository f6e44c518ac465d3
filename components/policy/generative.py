"""The generative recommender as a serving policy: ``recommend(contexts) -> slates``.

Used by the simulated A/B test and by evaluation. It sees what a production service would:
the listener's recent plays (from the request) and their latest features (the feature
lookup, i.e. the online store's values).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from components.featurestore.lookup import FeatureLookup
from components.policy.decoding import generate_slates, slot_probabilities
from components.policy.vocab import ItemVocab
from components.protocol import Contexts, Slates


class GenerativePolicy:
    """Sample (or greedily decode) a slate per context from a causal-LM policy."""

    def __init__(
        self,
        model,
        vocab: ItemVocab,
        lookup: FeatureLookup,
        policy_id: int,
        seed: int,
        sample: bool = True,
        temperature: float = 1.0,
    ):
        self.model, self.vocab, self.policy_id = model, vocab, policy_id
        self.seed, self.sample, self.temperature = seed, sample, temperature
        self._features = lookup.views["user_activity"].select("user_id", *vocab.features)

    def prompts(self, user_ids: np.ndarray, histories: np.ndarray) -> np.ndarray:
        rows = pl.DataFrame({"user_id": np.asarray(user_ids, dtype=np.int64)})
        features = rows.join(self._features, on="user_id", how="left", maintain_order="left")
        return self.vocab.prompts(features.select(self.vocab.features), histories)

    def recommend(self, contexts: Contexts) -> Slates:
        prompts = self.prompts(contexts.user_ids, contexts.history)
        seed = self.seed * 100_003 + int(contexts.day)
        return Slates(generate_slates(self.model, self.vocab, prompts, self.sample, seed, self.temperature))

    def slot_probabilities(
        self, user_ids: np.ndarray, histories: np.ndarray, slates: np.ndarray
    ) -> np.ndarray:
        """(n, k) per-slot probabilities of given slates under this policy (temperature 1)."""
        return slot_probabilities(self.model, self.vocab, self.prompts(user_ids, histories), slates)
