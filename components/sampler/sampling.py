"""Sampling slates the way the policy service serves them: one implementation for the service,
the simulated A/B test and the off-policy estimates of the served policy.

Per slot, with probability ε a track uniformly among those still allowed (catalogue tracks not
in the history, not already in the slate), else a sample of the constrained policy at
temperature T (T = 0: its argmax). The propensity of what was served in slot j, given the slots
above it, is exactly that mixture: ``p = (1 - ε) · π_T(track | prompt, slots < j) + ε / |allowed_j|``.
:class:`Sampler` bundles what a loaded policy needs for it (a decoder factory, the mask of
tokens a slate may never hold, token -> track ids).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from components.policy.vocab import ItemVocab
from components.sampler.decoder import Decoder, decoders


@dataclass(frozen=True)
class Sampler:
    """A policy ready to sample slates from: built once per loaded model."""

    decoder: Callable[[], Decoder]  # a fresh decoder (its own K/V cache) per batch
    non_track: torch.Tensor  # (model vocab,) bool: tokens a slate may never hold
    to_track: Callable[[np.ndarray], np.ndarray]  # token ids -> track ids
    slate_size: int

    @classmethod
    def of(cls, model: Any, vocab: ItemVocab) -> "Sampler":
        size = model.get_output_embeddings().weight.shape[0]
        mask = torch.ones(size, dtype=torch.bool)
        mask[: vocab.vocab_size] = non_track_mask(vocab)
        return cls(decoders(model, vocab.slate_size), mask, track_lookup(vocab), vocab.slate_size)

    def sample(
        self, prompts: np.ndarray, temperature: float, epsilon: float, generator: torch.Generator
    ) -> "SampledSlates":
        with torch.inference_mode():
            return sample_slates(
                self.decoder(), self.non_track, prompts, self.slate_size, temperature, epsilon, generator
            )


@dataclass(frozen=True)
class SampledSlates:
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
) -> SampledSlates:
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
    return SampledSlates(tokens.numpy(), prop.numpy(), pi.numpy(), explored.numpy())


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
