"""Mid-term labels: values (against a brute-force recount), censoring, attribution, metrics."""

from __future__ import annotations

import json

import polars as pl
import pytest

from components.label.core import run
from components.reward.labels import LABELS_FILE, attribution_share
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def labels(tiny_labels) -> pl.DataFrame:
    return pl.read_parquet(tiny_labels / LABELS_FILE)


@pytest.fixture(scope="module")
def n_days(tiny_raw) -> int:
    return json.loads((tiny_raw / "manifest.json").read_text())["days"]


def test_one_row_per_impression(labels, tiny_raw):
    imp = pl.read_parquet(tiny_raw / "impressions.parquet", columns=["event_id"])
    assert labels.height == imp.height and labels["event_id"].n_unique() == imp.height


def test_censoring_nulls_exactly_the_labels_whose_horizon_runs_past_the_log(labels, n_days):
    last = n_days - 1
    for col, h in [
        ("active_days_7d", 7),
        ("artist_return_14d", 14),
        ("retained_28d", 28),
        ("active_days_28d", 28),
    ]:
        censored = labels.filter(pl.col("day") + h > last)
        observed = labels.filter(pl.col("day") + h <= last)
        assert censored.height > 0 and observed.height > 0, col
        assert censored[col].null_count() == censored.height, f"{col}: a censored label has a value"
        assert observed[col].null_count() == 0, f"{col}: an observable label is null"
    # a composite is null exactly where any of its weighted inputs is
    from components.reward.composite import fixed_weights, with_reward

    lp = tiny_params().label
    reward = with_reward(labels, fixed_weights(lp.composite.fixed, lp))["reward"]
    assert reward.null_count() == labels["artist_return_14d"].null_count() > 0


def test_labels_equal_a_brute_force_recount(labels, tiny_raw):
    plays = pl.read_parquet(tiny_raw / "plays.parquet")
    imp = pl.read_parquet(tiny_raw / "impressions.parquet", columns=["event_id", "ts", "user_id"])
    start = imp["ts"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    day = lambda c: (pl.col(c) - pl.lit(start)).dt.total_days()  # noqa: E731
    activity = pl.concat(
        [plays.select("user_id", day=day("ts")), imp.select("user_id", day=day("ts"))]
    ).unique()
    plays = plays.with_columns(day=day("ts"))
    sample = labels.filter(pl.col("retained_28d").is_not_null()).sample(250, seed=3)
    for r in sample.iter_rows(named=True):
        d = r["day"]
        active = set(activity.filter(pl.col("user_id") == r["user_id"])["day"].to_list())
        assert r["active_days_7d"] == len([x for x in active if d < x <= d + 7])
        assert r["retained_28d"] == any(d + 21 < x <= d + 28 for x in active)
        artist = plays.filter(
            (pl.col("user_id") == r["user_id"]) & (pl.col("artist_id") == artist_of(tiny_raw, r["event_id"]))
        )
        later_days = artist.filter((pl.col("day") > d) & (pl.col("day") <= d + 14))["day"].n_unique()
        assert r["artist_return_14d"] == (later_days >= 2)
    assert 0 < sample["artist_return_14d"].sum() < sample.height, "the sample must hold both outcomes"


_ARTIST: dict = {}


def artist_of(raw, event_id: int) -> int:
    if not _ARTIST:
        imp = pl.read_parquet(raw / "impressions.parquet", columns=["event_id", "artist_id"])
        _ARTIST.update(dict(imp.iter_rows()))
    return _ARTIST[event_id]


@pytest.mark.parametrize("rule", ["equal", "split", "streamed", "position"])
def test_attribution_rules_share_the_session_outcome(labels, rule):
    lp = tiny_params(label__attribution=rule).label
    df = labels.with_columns(share=attribution_share(labels, lp)).filter(
        pl.col("active_days_7d").is_not_null()
    )
    per_session = df.group_by("session_id").agg(
        total=pl.col("share").sum(), n=pl.len(), streams=pl.col("streamed").sum()
    )
    if rule == "equal":
        assert (df["share"] == 1.0).all()
    elif rule in ("split", "position"):
        assert (per_session["total"] - 1.0).abs().max() < 1e-9  # one outcome, divided
        if rule == "position":
            first = df.filter(pl.col("position") == 0)["share"].mean()
            last = df.filter(pl.col("position") == df["position"].max())["share"].mean()
            assert first > last
    else:
        assert (df.filter(~pl.col("streamed"))["share"] == 0).all()
        assert (df.filter(pl.col("streamed"))["share"] == 1).all()


def test_metrics_report_rates_censoring_and_surrogate_accuracy(tmp_path, tiny_raw, params):
    metrics = run(params, tiny_raw, tmp_path / "labels")
    for key in (
        "label/streamed_mean",
        "label/artist_return_14d_mean",
        "label/censored/retained_28d",
        "label/censored/discovery",
        "label/surrogate/r2_later_cohort",
    ):
        assert key in metrics
    labels = pl.read_parquet(tmp_path / "labels" / LABELS_FILE)
    assert metrics["label/censored/retained_28d"] == labels["retained_28d"].null_count() > 0
    # the surrogate must beat predicting the mean of a later cohort, and be a real forecast
    assert 0.2 < metrics["label/surrogate/r2_later_cohort"] <= 1.0


def test_too_short_a_log_is_a_clear_error(tmp_path, params):
    from components.errors import EncoreError
    from components.raw_logs.simulate import simulate

    short = tiny_params(simulate__days=20)
    simulate(short, tmp_path / "raw", tmp_path / "world", progress=False)
    with pytest.raises(EncoreError, match="surrogate index needs"):
        run(short, tmp_path / "raw", tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


def test_history_signals_on_a_handmade_log():
    """discovery, repetition, slate concentration and listening share, recounted by hand."""
    from datetime import datetime, timedelta, timezone

    from components.reward.labels import history_signals

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    at = lambda d, h=12: t0 + timedelta(days=d, hours=h)  # noqa: E731
    imp = pl.DataFrame(
        {
            "event_id": [1, 2, 3, 4, 5, 6],
            "user_id": [7, 7, 7, 7, 7, 8],
            "ts": [at(20), at(20), at(20), at(24), at(40), at(20)],
            "session_id": [100, 100, 100, 101, 102, 103],
            "track_id": [10, 11, 12, 10, 10, 10],
            "artist_id": [1, 1, 2, 1, 1, 1],
            "streamed": [True, False, True, True, True, True],
            "ms_played": [100_000, 0, 50_000, 200_000, 200_000, 200_000],
        }
    )
    plays = pl.DataFrame({"user_id": [7, 8], "ts": [at(15), at(21)], "artist_id": [1, 1]})
    tracks = pl.DataFrame({"track_id": [10, 11, 12], "duration_ms": [200_000, 200_000, 100_000]})
    lp = tiny_params(label__min_history_days=14).label
    out = history_signals(imp, plays, tracks, t0, lp).sort("event_id")
    assert out["listen_fraction"].to_list() == [0.5, 0.0, 0.5, 1.0, 1.0, 1.0]
    # session 100 holds artist 1 twice in 3 slots: each of those shares with 1 of the 2 other slots
    assert out["slate_artist_concentration"].to_list()[:3] == [0.5, 0.5, 0.0]
    # track 10 was shown to user 7 on day 20: again on day 24 (within 7 days), not on day 40
    assert out["served_repeat_7d"].to_list() == [False, False, False, True, False, False]
    # user 7 played artist 1 on day 15 (not new); artist 2 is new and streamed;
    # user 8 first hears artist 1 on day 20
    assert out["discovery"].to_list() == [False, False, True, False, False, True]
    # 15 days earlier, all but one impression fall in the log's first 14 days: no history to judge by
    early = history_signals(imp.with_columns(ts=pl.col("ts") - timedelta(days=15)), plays, tracks, t0, lp)
    assert early.sort("event_id")["discovery"].is_null().to_list() == [True, True, True, True, False, True]
    assert early["served_repeat_7d"].null_count() == 5


def test_history_before_the_window_counts_for_repetition_and_discovery():
    """An A/B test resumes where the log ends: its first impressions are judged by the
    listeners' logged past (given as ``before``), not left unknown."""
    from datetime import datetime, timedelta, timezone

    from components.reward.labels import History, history_signals

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    test_start = t0 + timedelta(days=30)
    at = lambda d: test_start + timedelta(days=d, hours=12)  # noqa: E731
    imp = pl.DataFrame(
        {
            "event_id": [0, 1, 2],  # ids of the test's own logs: they may repeat the history's ids
            "user_id": [7, 7, 8],
            "ts": [at(0), at(1), at(0)],
            "session_id": [0, 1, 2],
            "track_id": [10, 11, 12],
            "artist_id": [1, 2, 3],
            "streamed": [True, True, True],
            "ms_played": [1_000, 1_000, 1_000],
        }
    )
    # an A/B arm's plays carry more columns than the log's (times in seconds since its start)
    plays = pl.DataFrame({"user_id": [7], "ts": [at(1)], "artist_id": [2], "seconds": [129_600.0]})
    tracks = pl.DataFrame({"track_id": [10, 11, 12], "duration_ms": [2_000, 2_000, 2_000]})
    before = History(
        start=t0,
        # user 7 was shown track 10 three days before the test; user 8 track 12 nine days before
        impressions=pl.DataFrame(
            {"user_id": [7, 8], "track_id": [10, 12], "ts": [at(-3), at(-9)], "event_id": [0, 1]}
        ),
        # user 7 has played artist 1 before; artist 2 and user 8's artist 3 are new
        plays=pl.DataFrame({"user_id": [7], "ts": [at(-20)], "artist_id": [1]}),
    )
    lp = tiny_params(label__min_history_days=14).label
    out = history_signals(imp, plays, tracks, test_start, lp, before).sort("event_id")
    assert out["served_repeat_7d"].to_list() == [True, False, False]
    assert out["discovery"].to_list() == [False, True, True]
    # without the history, the test's first 14 days have nothing to judge by
    alone = history_signals(imp, plays, tracks, test_start, lp)
    assert alone["discovery"].null_count() == 3 and alone["served_repeat_7d"].null_count() == 3


def test_labels_made_a_block_at_a_time_equal_all_at_once(tiny_raw, monkeypatch):
    """Large logs are labelled a block of impressions at a time (bounded memory); the blocks
    must not show: sessions cut by a block boundary keep their shares (``split``)."""
    from polars.testing import assert_frame_equal

    from components.logs import window
    from components.reward import signals
    from components.reward.labels import label_logs, read_logs

    lp = tiny_params(label__attribution="split").label
    start, n_days = window(tiny_raw)
    whole = label_logs(*read_logs(tiny_raw), start, n_days, lp)
    blocks = signals.MidTermSignals.blocks
    monkeypatch.setattr(signals.MidTermSignals, "blocks", lambda self, size=7_919: blocks(self, size))
    assert_frame_equal(label_logs(*read_logs(tiny_raw), start, n_days, lp), whole, check_exact=True)
