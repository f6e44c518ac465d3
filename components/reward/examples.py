"""Examples for the reward model: the training frame joined with labels, split by user and time.

Test users are held out entirely (no user is in both splits) and the test period comes
after the training period, so the metrics are a forecast for unseen listeners, later.
Evaluation holds out the same listeners and period (:func:`held_out_users`, :func:`split_day`),
so its off-policy estimates never score slates the reward model trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from components.featurestore.definitions import (
    TRAIN_FRAME,
    USER_ARTIST_FIELDS,
    track_stats_fields,
    user_activity_fields,
)
from components.params import FeaturesParams, RewardModelParams
from components.reward.composite import with_reward
from components.reward.labels import LABELS_FILE

if TYPE_CHECKING:
    from components.library import Library

LABEL_COLUMNS = ["streamed", "skipped", "saved", "artist_return_14d", "day", "session_id"]


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


def load_examples(
    features_dir: Path, labels_dir: Path, target: str, weights: dict[str, float]
) -> pl.DataFrame:
    """Impressions with features, labels and the composite ``reward`` (``weights``); rows whose
    ``target`` is censored are dropped. (To split them, :func:`load_split` does the same in a
    fraction of the memory.)"""
    return _with_labels(pl.read_parquet(Path(features_dir) / TRAIN_FRAME), labels_dir, target, weights)


def _with_labels(
    frame: pl.DataFrame, labels_dir: Path, target: str, weights: dict[str, float]
) -> pl.DataFrame:
    """``frame`` (training-frame rows, with ``event_id``) joined with the label columns the reward
    model uses and the composite ``reward``; rows whose ``target`` is censored are dropped."""
    wanted = ["event_id", *[c for c in dict.fromkeys([*LABEL_COLUMNS, *weights]) if c != "session_id"]]
    labels = with_reward(pl.read_parquet(Path(labels_dir) / LABELS_FILE, columns=wanted), weights)
    joined = frame.join(
        labels.select("event_id", *[c for c in LABEL_COLUMNS if c != "session_id"], "reward"),
        on="event_id",
        how="inner",
        maintain_order="left",
    )  # seeded samples need a fixed order
    if target not in joined.columns:
        raise ValueError(f"target '{target}' is not a label column (have {', '.join(LABEL_COLUMNS)}, reward)")
    return joined.filter(pl.col(target).is_not_null())


_ROW = "_train_frame_row"


@dataclass(frozen=True)
class ServedExamples:
    """Training examples to add from slates a candidate policy served (the closed loop's rounds):
    up to ``n`` impressions whose ``policy_id`` is one of ``policy_ids``, training users only.

    Why apart from the uniform sample: the served days sit at the log's end, past the split day, and
    are a small share of the log; a uniform sample would teach the reward model next to nothing about
    the neighbourhood the policy actually went to."""

    policy_ids: tuple[int, ...]
    n: int


def load_split(
    features_dir: Path,
    labels_dir: Path,
    target: str,
    weights: dict[str, float],
    rp: RewardModelParams,
    served: ServedExamples | None = None,
) -> "Split":
    """``split(load_examples(features_dir, labels_dir, target, weights), rp)``, row for row, without
    ever holding every example.

    Why: a training-frame row is ~530 bytes (list features, recent tracks), so the whole frame
    is ~20 GB at 10x the default world, while the split keeps at most ``max_train_examples`` +
    ``max_test_examples`` rows of it. The split is drawn on the columns it reads (user, session,
    day, labels) — the same seeded draws, as they depend on the row order only — and then only
    the chosen rows of the training frame are read."""
    path = Path(features_dir) / TRAIN_FRAME
    key_columns = ["event_id", "user_id", "session_id", *(["policy_id"] if served else [])]
    keys = pl.scan_parquet(path).select(key_columns).with_row_index(_ROW)
    labelled = _with_labels(keys.collect(), labels_dir, target, weights)
    if served:
        parts = _with_served(labelled, rp, served)
    else:
        parts = split(labelled, rp)
    chosen = pl.concat([parts.train[_ROW], parts.test[_ROW]]).implode()
    rows = pl.scan_parquet(path).with_row_index(_ROW).filter(pl.col(_ROW).is_in(chosen)).collect()

    def widen(side: pl.DataFrame) -> pl.DataFrame:
        labels = side.drop("event_id", "user_id", "session_id")
        wide = side.select(_ROW).join(rows, on=_ROW, how="left", maintain_order="left")
        return wide.join(labels, on=_ROW, how="left", maintain_order="left").drop(_ROW)

    return Split(
        train=widen(parts.train), test=widen(parts.test), split_day=parts.split_day, served=parts.served
    )


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    test: pl.DataFrame
    split_day: int
    served: int = 0  # training rows from served slates (:class:`ServedExamples`)


def _with_served(frame: pl.DataFrame, rp: RewardModelParams, served: ServedExamples) -> "Split":
    """:func:`split` of the other rows, then up to ``served.n`` served training-user rows added to
    the training side (seeded); the served rows of held-out users stay eligible for the test side."""
    is_served = pl.col("policy_id").is_in(list(served.policy_ids))
    parts = split(frame.filter(~is_served | held_out_users(rp)), rp)
    extra = frame.filter(is_served & ~held_out_users(rp))
    if extra.height > served.n:
        extra = extra.sample(served.n, seed=rp.seed)
    train = pl.concat([parts.train, extra]) if extra.height else parts.train
    return Split(
        train=train.drop("policy_id"),
        test=parts.test.drop("policy_id"),
        split_day=parts.split_day,
        served=extra.height,
    )


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
        if rp.objective == "pairwise":  # pairs are two impressions of one session: keep sessions whole
            train = _whole_sessions(train, rp.max_train_examples, rp.seed)
        else:
            train = train.sample(rp.max_train_examples, seed=rp.seed)
    if test.height > rp.max_test_examples:  # slate metrics need every item of a slate
        test = _whole_sessions(test, rp.max_test_examples, rp.seed)
    return Split(train=train, test=test, split_day=first_test_day)


def _whole_sessions(frame: pl.DataFrame, about: int, seed: int) -> pl.DataFrame:
    """About ``about`` rows of ``frame``, drawn as whole sessions (seeded).

    A row sample of a large log almost never holds two impressions of one session, so it would
    leave the pairwise objective without a single (chosen, rejected) pair and break every slate."""
    sessions = frame["session_id"].unique().sort()
    keep = sessions.sample(max(1, int(len(sessions) * about / frame.height)), seed=seed)
    return frame.filter(pl.col("session_id").is_in(keep.implode()))


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


def library_examples(
    library_labels: pl.DataFrame,
    library: "Library",
    raw_plays: pl.DataFrame,
    features_dir: Path,
    fp: FeaturesParams,
    rp: RewardModelParams,
    tracks: pl.DataFrame,
    target: str,
    weights: dict[str, float],
) -> pl.DataFrame:
    """Training examples from the experiment library's arms (far wider than the logging policy's
    neighbourhood): at most ``reward_model.max_library_examples`` labelled impressions of listeners
    the reward model may train on, with their features (:func:`library_features`).

    ``raw_plays``: the raw logs' plays (``user_id, ts, track_id``), the history before each experiment."""
    labels = with_reward(library_labels, weights).filter(pl.col(target).is_not_null() & ~held_out_users(rp))
    if labels.height > rp.max_library_examples:
        labels = labels.sort("event_id").sample(rp.max_library_examples, seed=rp.seed)
    keep = [c for c in LABEL_COLUMNS if c in labels.columns and c != "session_id"]
    return library_features(labels, library, raw_plays, features_dir, fp, tracks, keep=[*keep, "reward"])


def library_features(
    rows: pl.DataFrame,
    library: "Library",
    raw_plays: pl.DataFrame,
    features_dir: Path,
    fp: FeaturesParams,
    tracks: pl.DataFrame,
    keep: list[str] = (),
) -> pl.DataFrame:
    """The reward model's input columns for library impressions (``rows``: ``event_id, user_id, ts,
    experiment_id, policy_id, session_id`` + ``keep``): the features a serving system had when the
    experiment started (the online store's values as of its start) and the listener's actual
    recent plays in that arm before the impression's day."""
    from components.featurestore.lookup import FeatureLookup
    from components.featurestore.sources import user_history
    from components.logs import Logs

    rows = rows.join(library.impressions.select("event_id", "track_id"), on="event_id").sort("event_id")
    starts = library.experiments.select("experiment_id", "policy_id", "start")
    rows = rows.join(starts, on=["experiment_id", "policy_id"])
    log_start = datetime.fromisoformat(library.manifest["window_start"])
    out = []
    lookups: dict = {}
    for (_, pid), part in rows.group_by("experiment_id", "policy_id", maintain_order=True):
        start = part["start"][0]
        lookup = lookups.get(start) or lookups.setdefault(
            start, FeatureLookup.from_sources(features_dir, fp, tracks, start)
        )
        users = part["user_id"].unique().implode()
        plays = pl.concat(
            [
                raw_plays.filter(pl.col("user_id").is_in(users) & (pl.col("ts") < start)),
                library.plays.filter((pl.col("policy_id") == pid) & pl.col("user_id").is_in(users)).select(
                    "user_id", "ts", "track_id"
                ),
            ]
        )
        snapshots = user_history(
            Logs(pl.DataFrame(), plays, pl.DataFrame(), pl.DataFrame(), log_start, 0), fp
        )
        part = part.with_columns(as_of=pl.col("ts").dt.truncate("1d") + pl.duration(microseconds=1)).sort(
            "as_of"
        )
        part = part.join_asof(
            snapshots.sort("event_timestamp"),
            left_on="as_of",
            right_on="event_timestamp",
            by="user_id",
            strategy="backward",
        ).sort("event_id")
        feats = lookup.frame(
            part["user_id"].to_numpy(),
            part["track_id"].to_numpy()[:, None],
            histories=part["recent_tracks"].fill_null([]),
            request_ts=part["ts"],
        )
        out.append(
            feats.drop("row", "request_ts").with_columns(
                part.select("event_id", "session_id", "ts", "experiment_id", "policy_id", *keep)
            )
        )
    return pl.concat(out, how="diagonal_relaxed") if out else pl.DataFrame()
