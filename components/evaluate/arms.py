"""A candidate policy as a simulated A/B arm, decoded as ``ab.lm_decoding`` says it is served."""

from __future__ import annotations

import logging
from pathlib import Path

from components.featurestore.lookup import FeatureLookup
from components.params import ABParams
from components.policy.generative import GenerativePolicy
from components.policy.model import RANKER_DIR

log = logging.getLogger("encore.evaluate")


def ranks(policy_dir: Path, ab: ABParams) -> bool:
    """Is ``policy_dir`` served generate-then-rank? Under ``ab.lm_decoding: rank``, a policy that
    carries the reward model it was trained against (RL policies); SFT has none and serves greedy."""
    return ab.lm_decoding == "rank" and (Path(policy_dir) / RANKER_DIR).is_dir()


def load_ranked(policy_dir: Path, lookup: FeatureLookup):
    """(model, vocab, ranker) of a policy served generate-then-rank, on the CPU as the service runs;
    the ranker is its ``ranker/`` reward model reading ``lookup``."""
    from components.policy.model import load as load_policy
    from components.reward.model import RewardModel

    model, _, vocab = load_policy(policy_dir, device="cpu")
    return model, vocab, RewardModel.load(Path(policy_dir) / RANKER_DIR, device="cpu").with_lookup(lookup)


def policy_arm(policy_dir: Path, lookup: FeatureLookup, ab: ABParams, policy_id: int, seed: int):
    """Greedy: the policy's argmax slates. Sample: the policy service's own sampler (temperature
    ``ab.lm_temperature``, ε-uniform exploration ``ab.lm_epsilon``), on the CPU as the service runs.
    Rank: ``ab.rank_draws`` slates from that sampler, ranked by the policy's own reward model."""
    from components.policy.model import load as load_policy
    from components.sampler.served import RankedPolicy, ServedPolicy

    if ranks(policy_dir, ab):
        model, vocab, ranker = load_ranked(policy_dir, lookup)
        return RankedPolicy(
            model, vocab, lookup, ranker, policy_id, seed, ab.rank_draws, ab.lm_temperature, ab.lm_epsilon
        )
    if ab.lm_decoding == "rank":  # SFT, or an RL policy saved before policies carried their ranker
        log.warning("%s has no %s/ folder: served greedy under ab.lm_decoding: rank", policy_dir, RANKER_DIR)
    if ab.lm_decoding == "sample":
        model, _, vocab = load_policy(policy_dir, device="cpu")
        return ServedPolicy(model, vocab, lookup, policy_id, seed, ab.lm_temperature, ab.lm_epsilon)
    model, _, vocab = load_policy(policy_dir)
    return GenerativePolicy(model, vocab, lookup, policy_id=policy_id, seed=seed, sample=False)
