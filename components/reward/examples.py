"""Examples for the reward model: the training frame joined with labels, split by user and time.

Test users are held out entirely (no user is in both splits) and the test period comes
after the training period, so the metrics are a forecast for unseen listeners, later.
Evaluation holds out the same listeners and period (:func:`held_out_users`, :func:`split_day`),
so its off-policy estimates never score slates the reward model trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from components.featurestore.definitions import (
    TRAIN_FRAME,
    USER_ARTIST_FIELDS,
    track_stats_fields,
    user_activity_fields,
)
from components.params import FeaturesParams, RewardModelParams
from components.reward.labels import LABELS_FILE

LABEL_COLUMNS = ["streamed", "skipped", "saved", "artist_return_14d", "reward", "day"]


def genre_mix_feature(fp: FeaturesParams) -> str:
    return f"u_genre_mix_{fp.long_window_days}d"


def feature_lists(fp: FeaturesParams) -> tuple[list[str], list[str]]:
    """(user features, candidate features) as the model sees them.

    ``ua_last_play_epoch_day`` is replaced by the request-relative ``ua_days_since_last_play``
    (an absolute date would not transfer to later periods); the genre is its own token.
    """
    user = list(user_activity_fields(fp))
    cand = [f for f in track_stats_fields(fp) if f != "t_genre_id"]
    cand += [f for f in USER_ARTIST_FIELDS if f != "ua_last_play_epoch_day"] + ["ua_days_since_last_play"]
    return user, cand


def load_examples(features_dir: Path, labels_dir: Path, target: str) -> pl.DataFrame:
    """Impressions with features and labels; rows whose ``target`` is censored are dropped."""
    frame = pl.read_parquet(Path(features_dir) / TRAIN_FRAME)
    labels = pl.read_parquet(Path(labels_dir) / LABELS_FILE, columns=["event_id", *LABEL_COLUMNS])
    joined = frame.join(
        labels, on="event_id", how="inner", maintain_order="left"
    )  # seeded samples need a fixed order
    if target not in joined.columns:
        raise ValueError(f"target '{target}' is not a label column (have {', '.join(LABEL_COLUMNS)})")
    return joined.filter(pl.col(target).is_not_null())


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    test: pl.DataFrame
    split_day: int


def held_out_users(rp: RewardModelParams) -> pl.Expr:
    """True for the listeners the reward model never trains on (a stable hash of the id)."""
    return ((pl.col("user_id") * 2_654_435_761 + rp.seed) % 10_000) < int(rp.test_user_fraction * 10_000)


def split_day(days: pl.Series, rp: RewardModelParams) -> int:
    """First day of the held-out period: ``split_day_fraction`` of the way through ``days``."""
    return int(days.min() + rp.split_day_fraction * (days.max() - days.min()))


def split(frame: pl.DataFrame, rp: RewardModelParams) -> Split:
    """Held-out users x later period; each side subsampled (seeded) to its cap."""
    is_test_user = held_out_users(rp)
    first_test_day = split_day(frame["day"], rp)
    train = frame.filter(~is_test_user & (pl.col("day") < first_test_day))
    test = frame.filter(is_test_user & (pl.col("day") >= first_test_day))
    if train.height == 0 or test.height == 0:
        raise ValueError(
            f"empty split (train {train.height}, test {test.height} rows): the log is too short or too small"
        )
    if train.height > rp.max_train_examples:
        train = train.sample(rp.max_train_examples, seed=rp.seed)
    if test.height > rp.max_test_examples:
        # keep whole sessions in the test sample: slate metrics need every item of a slate
        sessions = test["session_id"].unique().sort()
        keep = sessions.sample(max(1, int(len(sessions) * rp.max_test_examples / test.height)), seed=rp.seed)
        test = test.filter(pl.col("session_id").is_in(keep.implode()))
    return Split(train=train, test=test, split_day=first_test_day)


def preference_pairs(frame: pl.DataFrame, target: str, max_pairs: int, seed: int) -> pl.DataFrame:
    """(chosen, rejected) row indexes: two impressions of the same slate with different outcomes."""
    rows = frame.select("session_id", pl.col(target).cast(pl.Float64).alias("y")).with_row_index("i")
    pairs = rows.join(rows, on="session_id", suffix="_b", maintain_order="left_right").filter(
        pl.col("y") > pl.col("y_b")
    )
    if pairs.height > max_pairs:
        pairs = pairs.sample(max_pairs, seed=seed)
    return pairs.select(chosen="i", rejected="i_b", margin=pl.col("y") - pl.col("y_b"))


def numeric_matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy()
