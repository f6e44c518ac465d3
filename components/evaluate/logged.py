"""Held-out logged slates for off-policy evaluation, and the policies' numbers on them.

Held out = listeners the reward model never trained on, in the period after its training
window, whose composite reward is observed for every slot of the slate. Each candidate
policy is scored on exactly these slates: its slot probabilities for the logged tracks
(given the logged prefix), and the reward model's expectation of its own slot choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from components.evaluate.arms import load_ranked, ranks
from components.featurestore.definitions import TRAIN_FRAME
from components.featurestore.store import add_request_features
from components.params import ABParams, Params
from components.policy.decoding import generate_slates, kl_per_slot, slot_probabilities
from components.policy.model import load as load_policy
from components.reward.composite import with_reward
from components.reward.examples import held_out_users, split_day
from components.reward.labels import LABELS_FILE
from components.reward.model import RewardModel
from components.sampler.ranked import rank_slates, ranked_probabilities
from components.sampler.sampling import Sampler, allowed_counts
from components.sampler.served import history_scorer
from components.sequences import right_aligned


@dataclass(frozen=True)
class LoggedSlates:
    frame: pl.DataFrame  # one row per impression, sorted by (session, position)
    k: int

    @property
    def n(self) -> int:
        return self.frame.height // self.k

    def matrix(self, column: str) -> np.ndarray:
        return self.frame[column].cast(pl.Float64).to_numpy().reshape(self.n, self.k)

    def slates(self) -> np.ndarray:
        return self.frame["track_id"].to_numpy().reshape(self.n, self.k)

    def firsts(self) -> pl.DataFrame:
        """One row per slate (its first slot): the context."""
        return self.frame.filter(pl.col("position") == 0)


def held_out_slates(
    params: Params,
    features_dir: Path,
    labels_dir: Path,
    k: int,
    max_slates: int,
    seed: int,
    weights: dict[str, float],
    policy_id: int | None = None,
) -> LoggedSlates:
    """Held-out slates with ``reward`` = the composite with ``weights`` (per slot); ``policy_id``:
    only the slates that policy served (the closed loop's treatment arm), else every policy's."""
    rp = params.reward_model
    frame = pl.scan_parquet(Path(features_dir) / TRAIN_FRAME)
    columns = dict.fromkeys(["event_id", "day", "streamed", "skipped", "saved", *weights])
    labels = with_reward(pl.read_parquet(Path(labels_dir) / LABELS_FILE, columns=list(columns)), weights)
    logged_ids = frame.select("event_id").collect()
    labelled = labels.filter(pl.col("reward").is_not_null()).join(logged_ids, on="event_id", how="semi")
    # lazily: the held-out listeners' rows are filtered as the frame is read (a fifth of the
    # training frame, whose list column is most of the cost), not after reading all of it
    held = held_out_users(rp) & (pl.col("day") >= split_day(labelled["day"], rp))
    if policy_id is not None:
        held &= pl.col("policy_id") == policy_id
    df = (
        frame.join(
            labels.lazy().select("event_id", "reward", "day", "streamed", "skipped", "saved"), on="event_id"
        )
        .filter(held)
        .collect()
    )
    complete = df.group_by("session_id").agg(
        n=pl.len(), observed=pl.col("reward").is_not_null().sum(), p=pl.col("propensity").min()
    )
    ok = complete.filter((pl.col("n") == k) & (pl.col("observed") == k) & (pl.col("p") > 0))["session_id"]
    if len(ok) > max_slates:
        ok = ok.sort().sample(max_slates, seed=seed)  # group_by order is not stable: sort, then sample
    df = df.filter(pl.col("session_id").is_in(ok.implode())).sort("session_id", "position")
    return LoggedSlates(df, k)


def policy_numbers(
    logged: LoggedSlates, policy_dir: Path, reward: RewardModel, ab: ABParams, seed: int
) -> dict[str, np.ndarray]:
    """``pi`` (n, k): the policy's probability of each logged track given the logged prefix, as it
    is served (``ab.lm_decoding``: greedy, or the service's sampler with ``lm_temperature`` and
    ε-uniform exploration ``lm_epsilon``); ``q_pi`` (n, k): the reward model's value of what the
    policy itself would put in each slot; ``slates``: the slates it serves for these contexts."""
    if ranks(policy_dir, ab):
        return ranked_numbers(logged, policy_dir, reward, ab, seed)
    sample = ab.lm_decoding == "sample"
    model, _, vocab = load_policy(policy_dir, device="cpu" if sample else None)
    prompts = context_prompts(logged, vocab)
    logged_slates = logged.slates()
    if not sample:
        pi = slot_probabilities(model, vocab, prompts, logged_slates, temperature=None)
        own = generate_slates(model, vocab, prompts, sample=False)
        return numbers_from_slates(logged, own, pi, reward)
    pi = served_probabilities(model, vocab, prompts, logged_slates, ab.lm_temperature, ab.lm_epsilon)
    sampler = Sampler.of(model, vocab)
    drawn = sampler.sample(prompts, ab.lm_temperature, ab.lm_epsilon, torch.Generator().manual_seed(seed))
    return numbers_from_slates(logged, sampler.to_track(drawn.tokens), pi, reward)


def ranked_numbers(
    logged: LoggedSlates, policy_dir: Path, reward: RewardModel, ab: ABParams, seed: int
) -> dict[str, np.ndarray]:
    """:func:`policy_numbers` of a policy served generate-then-rank: ``pi`` is the Monte-Carlo
    probability of each logged track given the logged prefix (``ab.rank_propensity_draws``
    candidate sets per context, :func:`~components.sampler.ranked.ranked_probabilities`), ``own``
    one ranked slate per context; the ranker scores with each context's listener and recent plays."""
    model, vocab, ranker = load_ranked(policy_dir, reward.lookup)
    contexts = logged.firsts()
    prompts = context_prompts(logged, vocab)
    score = history_scorer(
        ranker, contexts["user_id"].to_numpy(), right_aligned(contexts["recent_tracks"], vocab.history_length)
    )
    sampler = Sampler.of(model, vocab)
    generator = torch.Generator().manual_seed(seed)
    own = rank_slates(
        sampler, prompts, score, ab.rank_draws, ab.lm_temperature, ab.lm_epsilon, generator
    ).tokens
    pi = ranked_probabilities(
        sampler,
        prompts,
        score,
        logged.slates(),
        allowed_counts(vocab, prompts),
        ab.rank_draws,
        ab.lm_temperature,
        ab.lm_epsilon,
        ab.rank_propensity_draws,
        generator,
    )
    return numbers_from_slates(logged, sampler.to_track(own), pi, reward)


def kl_to_reference(logged: LoggedSlates, policy_dir: Path, reference_dir: Path, seed: int) -> float:
    """The policy's mean per-slot KL to ``reference_dir``'s (the imitation policy: what
    ``register.max_kl`` bounds) on the logged contexts, both at temperature 1."""
    model, _, vocab = load_policy(policy_dir, device="cpu")
    reference, _, _ = load_policy(reference_dir, device="cpu")
    return kl_per_slot(model, reference, vocab, context_prompts(logged, vocab), seed)


def context_prompts(logged: LoggedSlates, vocab) -> np.ndarray:
    """The policy prompts of the logged contexts (their features and recent plays)."""
    contexts = logged.firsts()
    return vocab.prompts(
        contexts.select(vocab.features), right_aligned(contexts["recent_tracks"], vocab.history_length)
    )


def served_probabilities(
    model, vocab, prompts: np.ndarray, slates: np.ndarray, temperature: float, epsilon: float
) -> np.ndarray:
    """(n, k) probability that the policy service puts ``slates[:, j]`` in slot j given the slots
    above: the ε-mixture of the constrained policy at ``temperature`` and the uniform draw over the
    allowed tracks — the propensity the service logs for what it served."""
    pi_t = slot_probabilities(model, vocab, prompts, slates, temperature=temperature)
    return (1 - epsilon) * pi_t + epsilon / allowed_counts(vocab, prompts)


def numbers_from_slates(logged: LoggedSlates, own: np.ndarray, pi: np.ndarray, reward: RewardModel) -> dict:
    """Any policy's numbers from its own slates for the logged contexts, ``own`` (n, k), and its
    probabilities of the logged tracks, ``pi`` (n, k): adds ``q_pi``, the reward model's value of
    its own slots (:func:`direct_method_scores`)."""
    return {"pi": pi, "q_pi": direct_method_scores(logged, own, reward), "slates": own}


def logged_q(logged: LoggedSlates, reward: RewardModel) -> np.ndarray:
    """(n, k) the reward model's value of the logged slots for DR's correction term, scored exactly
    as every policy's ``q_pi`` is (:func:`direct_method_scores`).

    Why not the training frame's point-in-time scores: DR = q_pi + w (r - q) is unbiased with exact
    propensities only when both q's are one function. Scored two ways (the frame's features as of
    each impression, the lookup's as of the log's end) the gap between them is a bias no weight
    corrects: from the loop's stochastic logs DR missed a round's truth by -9.2 % that way and by
    +1.1 % scored one way (docs/loop.md)."""
    return direct_method_scores(logged, logged.slates(), reward)


def direct_method_scores(logged: LoggedSlates, slates: np.ndarray, reward: RewardModel) -> np.ndarray:
    """(n, k) the reward model's score of ``slates[i, j]`` in logged context i: the context's
    listener and request time, the candidate's features from the feature lookup (the online
    views: a candidate the listener was never shown has no point-in-time row to read)."""
    contexts = logged.firsts()
    rows = (
        pl.DataFrame(
            {"session_id": np.repeat(contexts["session_id"].to_numpy(), logged.k), "track_id": slates.ravel()}
        )
        .with_row_index("row")
        .join(contexts.drop("track_id", "artist_id"), on="session_id", how="left")
        .join(reward.lookup.tracks, on="track_id", how="left")
    )
    drop = [c for c in rows.columns if c.startswith(("t_", "ua_"))]
    rows = rows.drop(drop)
    rows = rows.join(reward.lookup.views["track_stats"], on="track_id", how="left")
    rows = rows.join(reward.lookup.views["user_artist"], on=["user_id", "artist_id"], how="left")
    rows = add_request_features(rows, "ts").sort("row")
    return reward.score_frame(rows).reshape(logged.n, logged.k)


def deterministic_pi(logged: LoggedSlates, own: np.ndarray) -> np.ndarray:
    """``pi`` of a policy that always serves ``own``: 1 where the logged track is the one it puts in
    that slot (the item-position view the IIPS and DR estimators take), 0 elsewhere."""
    return (logged.slates() == own).astype(np.float64)
