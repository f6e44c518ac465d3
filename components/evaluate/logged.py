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

from components.featurestore.definitions import TRAIN_FRAME
from components.featurestore.store import add_request_features
from components.params import Params
from components.policy.decoding import generate_slates, slot_probabilities
from components.policy.model import load as load_policy
from components.reward.examples import held_out_users, split_day
from components.reward.labels import LABELS_FILE
from components.reward.model import RewardModel
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
    params: Params, features_dir: Path, labels_dir: Path, k: int, max_slates: int, seed: int
) -> LoggedSlates:
    rp = params.reward_model
    frame = pl.read_parquet(Path(features_dir) / TRAIN_FRAME)
    labels = pl.read_parquet(
        Path(labels_dir) / LABELS_FILE, columns=["event_id", "reward", "day", "streamed", "skipped", "saved"]
    )
    df = frame.join(labels, on="event_id")
    labelled = df.filter(pl.col("reward").is_not_null())
    df = df.filter(held_out_users(rp) & (pl.col("day") >= split_day(labelled["day"], rp)))
    complete = df.group_by("session_id").agg(
        n=pl.len(), observed=pl.col("reward").is_not_null().sum(), p=pl.col("propensity").min()
    )
    ok = complete.filter((pl.col("n") == k) & (pl.col("observed") == k) & (pl.col("p") > 0))["session_id"]
    if len(ok) > max_slates:
        ok = ok.sort().sample(max_slates, seed=seed)  # group_by order is not stable: sort, then sample
    df = df.filter(pl.col("session_id").is_in(ok.implode())).sort("session_id", "position")
    return LoggedSlates(df, k)


def policy_numbers(
    logged: LoggedSlates, policy_dir: Path, reward: RewardModel, temperature: float, sample: bool, seed: int
) -> dict[str, np.ndarray]:
    """``pi`` (n, k): the policy's probability of each logged track given the logged prefix;
    ``q_pi`` (n, k): the reward model's value of what the policy itself would put in each slot;
    ``slates``: the slates it generates for these contexts."""
    model, _, vocab = load_policy(policy_dir)
    contexts = logged.firsts()
    prompts = vocab.prompts(
        contexts.select(vocab.features), right_aligned(contexts["recent_tracks"], vocab.history_length)
    )
    logged_slates = logged.slates()
    pi = slot_probabilities(
        model, vocab, prompts, logged_slates, temperature=None if not sample else temperature
    )
    own = generate_slates(model, vocab, prompts, sample=sample, seed=seed, temperature=temperature)
    rows = contexts.drop("track_id", "artist_id").join(
        pl.DataFrame(
            {"session_id": np.repeat(contexts["session_id"].to_numpy(), logged.k), "track_id": own.ravel()}
        ),
        on="session_id",
    )
    rows = rows.join(reward.lookup.tracks, on="track_id", how="left") if reward.lookup else rows
    q_pi = reward.score_frame(_with_candidate_features(rows, logged, reward)).reshape(logged.n, logged.k)
    return {"pi": pi, "q_pi": q_pi, "slates": own}


def _with_candidate_features(rows: pl.DataFrame, logged: LoggedSlates, reward: RewardModel) -> pl.DataFrame:
    """Candidate-side features of the policy's own tracks, as of the logged contexts' time."""
    lookup = reward.lookup
    drop = [c for c in rows.columns if c.startswith(("t_", "ua_"))]
    rows = rows.drop(drop)
    rows = rows.join(lookup.views["track_stats"], on="track_id", how="left")
    rows = rows.join(lookup.views["user_artist"], on=["user_id", "artist_id"], how="left")
    return add_request_features(rows, "ts")
