"""The training frame of a large log is built a block of impressions at a time (bounded memory):
the blocks must not show in the frame or in the stage's metrics."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from components.features import core
from components.featurestore.definitions import TRAIN_FRAME


def test_a_training_frame_made_in_blocks_equals_one_made_at_once(
    tmp_path, tiny_raw, tiny_features, params, monkeypatch
):
    monkeypatch.setattr(core, "BLOCK_ROWS", 30_011)  # a few blocks on the tiny world
    metrics = core.run(params, tiny_raw, tmp_path / "features")
    blocked = pl.read_parquet(tmp_path / "features" / TRAIN_FRAME)
    whole = pl.read_parquet(tiny_features / TRAIN_FRAME)
    assert blocked.height > 3 * 30_011
    assert_frame_equal(blocked, whole, check_exact=True)
    assert metrics["features/train_frame_rows"] == whole.height
    assert metrics["features/null_rate/ua_plays"] == whole["ua_plays"].null_count() / whole.height
    assert not list((tmp_path / "features").glob("*.part*")), "block files must not be left behind"
