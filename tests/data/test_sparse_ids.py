"""Sparse ids: labels and feature sources do not depend on how ids are spelled, and their memory
follows the number of distinct ids, not the largest one.

Real warehouses hand out sparse surrogate keys (max id 20M for 10k listeners). The tiny world's
ids are respelled ``id * k + offset`` and everything is recomputed: the outputs, mapped back,
must equal the dense ones exactly, and the peak of numpy allocations (the id-indexed grids)
must stay close to the dense run's.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from components.features.core import LOG_COLUMNS
from components.featurestore import sources as S
from components.logs import Logs, dense_codes, load_logs, window
from components.reward.labels import label_logs, read_logs

# Two spellings: ids x1000 (a range the old "dense enough" guess took for dense, sizing the grids
# by it) and listeners x50,000 (max id ~2e7 on the tiny world, like a real warehouse's keys).
SPELLINGS = {
    "x1000": {"user_id": 1000, "track_id": 1000, "artist_id": 1000, "session_id": 1000, "event_id": 1000},
    "max_2e7": {
        "user_id": 50_000,
        "track_id": 7_000,
        "artist_id": 30_000,
        "session_id": 1000,
        "event_id": 100,
    },
}
OFFSET = 17


def respell(frame: pl.DataFrame, spelling: dict[str, int]) -> pl.DataFrame:
    return frame.with_columns(pl.col(c) * k + OFFSET for c, k in spelling.items() if c in frame.columns)


def unspell(frame: pl.DataFrame, spelling: dict[str, int]) -> pl.DataFrame:
    back = {c: (pl.col(c) - OFFSET) // k for c, k in spelling.items() if c in frame.columns}
    if "recent_tracks" in frame.columns:
        k = spelling["track_id"]
        back["recent_tracks"] = pl.col("recent_tracks").list.eval((pl.element() - OFFSET) // k)
    return frame.with_columns(**back)


def numpy_peak(fn: Callable[[], pl.DataFrame]) -> tuple[pl.DataFrame, int]:
    """(result, peak bytes of Python/numpy allocations while computing it)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_dense_codes_keep_order_on_both_paths():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 500, 2_000)  # a range smaller than the rows: presence table
    huge = small * 40_000 + 3  # a range far larger than the rows: hash of the distinct ids
    for a, b in [(small, small[:700]), (huge, huge[:700])]:
        (ca, cb), n = dense_codes(a, b)
        assert n == len(np.unique(a))
        assert np.array_equal(ca, np.searchsorted(np.unique(a), a))
        assert np.array_equal(cb, ca[:700])
    (c,), n = dense_codes(np.arange(5))
    assert n == 5 and np.array_equal(c, np.arange(5))  # already dense: unchanged
    (c,), n = dense_codes(np.zeros(0, dtype=np.int64))
    assert n == 0 and len(c) == 0


@pytest.fixture(scope="module")
def logs(tiny_raw) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    imp, plays, tracks = read_logs(tiny_raw)
    return imp.collect(), plays.collect(), tracks.collect()


@pytest.mark.parametrize("name", SPELLINGS)
def test_labels_are_the_same_under_sparse_ids_in_the_same_memory(tiny_raw, params, logs, name):
    spelling = SPELLINGS[name]
    start, n_days = window(tiny_raw)
    imp, plays, tracks = logs

    def label(imp: pl.DataFrame, plays: pl.DataFrame, tracks: pl.DataFrame) -> pl.DataFrame:
        return label_logs(imp, plays, tracks, start, n_days, params.label)

    dense, dense_peak = numpy_peak(lambda: label(imp, plays, tracks))
    sparse, sparse_peak = numpy_peak(
        lambda: label(respell(imp, spelling), respell(plays, spelling), respell(tracks, spelling))
    )
    assert max(imp["user_id"].max() * spelling["user_id"], 0) > 300_000
    assert_frame_equal(unspell(sparse, spelling), dense, check_exact=True)
    assert sparse_peak < 1.5 * dense_peak + 4e6, f"sparse ids took {sparse_peak:,} B vs {dense_peak:,} B"


@pytest.mark.parametrize("name", SPELLINGS)
def test_feature_sources_are_the_same_under_sparse_ids_in_the_same_memory(tiny_raw, params, name):
    spelling = SPELLINGS[name]
    logs = load_logs(tiny_raw, LOG_COLUMNS)
    sparse_logs = Logs(
        *(respell(t, spelling) for t in (logs.impressions, logs.plays, logs.users, logs.tracks)),
        start=logs.start,
        n_days=logs.n_days,
    )
    fp = params.features
    builders = {
        "user_activity": lambda lg: S.user_activity(lg, fp),
        "track_stats": lambda lg: S.track_stats(lg, fp),
        "user_artist": S.user_artist,
        "user_history": lambda lg: S.user_history(lg, fp),
    }
    for build in builders.values():
        dense, dense_peak = numpy_peak(lambda: build(logs))
        sparse, sparse_peak = numpy_peak(lambda: build(sparse_logs))
        assert_frame_equal(unspell(sparse, spelling), dense, check_exact=True)
        assert sparse_peak < 1.5 * dense_peak + 4e6, f"{sparse_peak:,} B vs {dense_peak:,} B"


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_slate_shapes_are_the_same_under_sparse_track_ids(spelling):
    """The guardrails of served slates (diversity, concentration, coverage) look tracks up in
    the catalogue by search, not in an array sized by the largest track id."""
    from components.policy.metrics import slate_shape

    rng = np.random.default_rng(5)
    tracks = pl.DataFrame(
        {
            "track_id": np.arange(300),
            "artist_id": rng.integers(0, 40, 300),
            "genre_id": rng.integers(0, 9, 300),
        }
    )
    slates = rng.integers(0, 300, (500, 10))
    slates[0, 3] = 10_000  # a track outside the catalogue counts as its own artist and genre
    dense = slate_shape(slates, tracks)
    k = spelling["track_id"]
    sparse = slate_shape(slates * k + OFFSET, respell(tracks, spelling))
    assert sparse == dense
    # the concentration is what the slates hold: recount it slate by slate
    artist = dict(zip(tracks["track_id"], tracks["artist_id"]))
    top = [
        max(np.unique([artist.get(t, -1 - i) for i, t in enumerate(s)], return_counts=True)[1])
        for s in slates
    ]
    assert dense["artist_concentration"] == pytest.approx(np.mean(top) / 10)
