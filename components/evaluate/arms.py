"""A candidate policy as a simulated A/B arm, decoded as ``ab.lm_decoding`` says it is served."""

from __future__ import annotations

from pathlib import Path

from components.featurestore.lookup import FeatureLookup
from components.params import ABParams
from components.policy.generative import GenerativePolicy


def policy_arm(policy_dir: Path, lookup: FeatureLookup, ab: ABParams, policy_id: int, seed: int):
    """Greedy: the policy's argmax slates. Sample: the policy service's own sampler (temperature
    ``ab.lm_temperature``, ε-uniform exploration ``ab.lm_epsilon``), on the CPU as the service runs."""
    from components.policy.model import load as load_policy
    from components.sampler.served import ServedPolicy

    if ab.lm_decoding == "sample":
        model, _, vocab = load_policy(policy_dir, device="cpu")
        return ServedPolicy(model, vocab, lookup, policy_id, seed, ab.lm_temperature, ab.lm_epsilon)
    model, _, vocab = load_policy(policy_dir)
    return GenerativePolicy(model, vocab, lookup, policy_id=policy_id, seed=seed, sample=False)
