"""The reason Encore exists: mid-term labels track true long-term value; the click label does not.

Reads the simulator's hidden truth (tests may; stages may not) and compares rank
correlations between each label and the true expected long-term value of the
recommended track for that listener.
"""

from __future__ import annotations

import polars as pl
import pytest
from scipy.stats import spearmanr

from components.reward.labels import LABELS_FILE
from components.world import load_world, true_long_term_value


@pytest.fixture(scope="module")
def scored(tiny_logs, tiny_labels) -> pl.DataFrame:
    raw, world_dir = tiny_logs
    world, _ = load_world(world_dir)
    from components.reward.composite import fixed_weights, with_reward
    from tests.conftest import tiny_params

    lp = tiny_params().label
    labels = with_reward(pl.read_parquet(tiny_labels / LABELS_FILE), fixed_weights(lp.composite.fixed, lp))
    labels = labels.filter(pl.col("reward").is_not_null())
    tracks = pl.read_parquet(raw / "impressions.parquet", columns=["event_id", "track_id"])
    df = labels.join(tracks, on="event_id")
    ltv = true_long_term_value(
        world.params.dynamics,
        world.catalogue,
        world.population,
        df["user_id"].to_numpy(),
        df["track_id"].to_numpy(),
        world.params.oracle.habit_weight,
    )
    return df.with_columns(true_ltv=pl.Series(ltv))


def _rho(df: pl.DataFrame, col: str) -> float:
    return spearmanr(df[col].cast(pl.Float64).to_numpy(), df["true_ltv"].to_numpy()).statistic


def test_mid_term_labels_track_true_value_better_than_the_stream_label(scored):
    assert scored.height > 20_000
    click = _rho(scored, "streamed")
    for label in ("artist_return_14d", "reward"):
        assert _rho(scored, label) > click + 0.1, (
            f"{label}: {_rho(scored, label):.3f} vs streamed {click:.3f}"
        )
