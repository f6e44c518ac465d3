"""Keyed random streams: the basis of common random numbers (CRN) across A/B arms.

Every draw the world makes is taken from a generator keyed by (seed, day, purpose) and
sized by the *whole* population, so user ``u`` gets the same uniforms on day ``d`` in
every arm of an A/B test, whatever the other users or the policy did. Differences
between arms then come from the policies, not from sampling noise.
"""

from __future__ import annotations

import zlib

import numpy as np

from components.world.exact import exp


def stream(seed: int, day: int, purpose: str) -> np.random.Generator:
    """An independent generator for one (seed, day, purpose); ``day`` may be negative (warm-up)."""
    key = zlib.crc32(purpose.encode())
    entropy = [seed & 0xFFFFFFFF, (day + 1_000_000) & 0xFFFFFFFF, key]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function (float32 in, float32 out)."""
    return 1.0 / (1.0 + exp(-np.clip(x, -30.0, 30.0)))


def poisson_from_uniform(u: np.ndarray, rate: np.ndarray, cap: int) -> np.ndarray:
    """Poisson(rate) draws by inverse CDF of given uniforms, truncated at ``cap``.

    Inverse-CDF keeps CRN intact (one uniform per user whatever the rate), which
    ``Generator.poisson`` cannot promise.
    """
    rate = np.asarray(rate, dtype=np.float64)
    pmf = exp(-rate)
    cdf = pmf.copy()
    count = np.zeros(rate.shape, dtype=np.int64)
    for k in range(1, cap + 1):
        count += u > cdf
        pmf = pmf * rate / k
        cdf = cdf + pmf
    return count
