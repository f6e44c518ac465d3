"""Fixtures of the policy tests: the tiny world's SFT policy and prompts of random listeners."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from components import contract
from components.policy.model import load


@pytest.fixture(scope="module")
def policy(tiny_sft):
    """(model, tokenizer, vocab) of the tiny SFT policy."""
    return load(tiny_sft[0])


@pytest.fixture(scope="module")
def prompts(policy, tiny_raw):
    """(prompts, histories, catalogue): 400 random listeners, the first 50 with short histories."""
    _, _, vocab = policy
    rng = np.random.default_rng(0)
    tracks = contract.read(tiny_raw, "tracks", ["track_id"])["track_id"].to_numpy()
    histories = rng.choice(tracks, size=(400, vocab.history_length))
    histories[:50, :12] = -1  # short histories too
    features = pl.DataFrame({f: rng.integers(0, 30, 400) for f in vocab.features})
    return vocab.prompts(features, histories), histories, tracks
