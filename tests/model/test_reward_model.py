"""The reward model: outputs, scoring API, tokenizer, and behaviour (it learns what it is taught)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from components import contract
from components.featurestore.lookup import FeatureLookup
from components.reward.composite import WEIGHTS_FILE
from components.reward.model import EXAMPLE_FILE as EXAMPLE
from components.reward.model import RewardModel
from components.reward.tokens import DERIVED
from components.reward_model.core import CURVE_CSV, run
from tests.conftest import TINY_REWARD, tiny_params


def test_training_writes_a_complete_model_and_reports_both_model_and_baseline(tiny_reward_model):
    out, metrics = tiny_reward_model
    for name in (
        "config.json",
        "model.safetensors",
        "encoder.json",
        "tokenizer.json",
        "reward_model.json",
        CURVE_CSV,
        "curve.png",
        EXAMPLE,
    ):
        assert (out / name).exists(), name
    for prefix in ("eval", "baseline"):
        for m in ("auc_streamed", "auc_artist_return_14d", "pairwise_accuracy", "ndcg_at_10", "rmse", "ece"):
            assert f"{prefix}/{m}" in metrics, f"{prefix}/{m}"
    curve = pl.read_csv(out / CURVE_CSV)
    assert curve.height >= 2 and curve["eval_loss"].is_finite().all()
    assert metrics["train/examples_per_second"] > 0 and metrics["eval/scores_per_second"] > 0


def test_saved_model_scores_like_the_trained_one_and_batches_do_not_matter(tiny_reward_model):
    out, _ = tiny_reward_model
    example = pl.read_parquet(out / EXAMPLE)
    a = RewardModel.load(out).score_frame(example)
    b = RewardModel.load(out).score_frame(example, batch_size=3)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    single = np.concatenate(
        [RewardModel.load(out).score_frame(example[i : i + 1]) for i in range(example.height)]
    )
    np.testing.assert_allclose(a, single, rtol=1e-5)


def test_arithmetic_encoding_matches_the_saved_tokenizer(tiny_reward_model):
    from transformers import PreTrainedTokenizerFast

    out, _ = tiny_reward_model
    model = RewardModel.load(out)
    tok = PreTrainedTokenizerFast.from_pretrained(out)
    ids = model.encoder.encode(pl.read_parquet(out / EXAMPLE))
    inverse = {i: t for t, i in tok.get_vocab().items()}
    for row in ids:
        text = " ".join(inverse[i] for i in row)
        assert tok(text, add_special_tokens=False)["input_ids"] == row.tolist()
    assert all(any(t.startswith(f"{d}=") for t in tok.get_vocab()) for d in DERIVED)


def test_score_api_for_slates(tiny_reward_model, tiny_raw, tiny_features, params):
    out, _ = tiny_reward_model
    tracks = pl.from_arrow(contract.read(tiny_raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(tiny_features, params.features, tracks)
    users = lookup.users()["user_id"].to_numpy()[:6]
    slates = np.arange(60).reshape(6, 10)
    model = RewardModel.load(out).with_lookup(lookup)
    scores = model.score(users, slates)
    assert scores.shape == (6, 10) and np.isfinite(scores).all()
    # the same user-track cell scores the same wherever it sits in the batch
    again = model.score(users[::-1], slates[::-1])
    np.testing.assert_allclose(scores, again[::-1], rtol=1e-5)
    with pytest.raises(RuntimeError, match="FeatureLookup"):
        RewardModel.load(out).score(users, slates)


def test_it_learns_a_rule_it_is_taught(tmp_path, tiny_raw, tiny_features, tiny_labels, tiny_experiments):
    """Directional: if the composite is 'the candidate is in the listener's recent history', the
    model must rank such candidates first on held-out users. The rule is taught the way the
    pipeline sets any composite: as a label column and the signals stage's ``weights.json``."""
    labels = pl.read_parquet(tiny_labels / "labels.parquet")
    frame = pl.read_parquet(
        tiny_features / "train_frame.parquet", columns=["event_id", "track_id", "recent_tracks"]
    )
    rule = frame.select(
        "event_id",
        taught=pl.col("recent_tracks").list.contains(pl.col("track_id")).fill_null(False).cast(pl.Float64),
    )
    (tmp_path / "labels").mkdir()
    labels.join(rule, on="event_id").write_parquet(tmp_path / "labels" / "labels.parquet")
    signals = tmp_path / "signals"  # weights only: no library labels, so no library examples
    signals.mkdir()
    (signals / WEIGHTS_FILE).write_text(
        json.dumps({"active": {"source": "test", "columns": {"taught": 2.0}}})
    )
    params = tiny_params(
        **{k.replace(".", "__"): v for k, v in TINY_REWARD.items()}, reward_model__train__epochs=3
    )
    metrics = run(
        params,
        tiny_raw,
        tiny_features,
        tmp_path / "labels",
        tmp_path / "model",
        "midterm",
        progress=False,
        signals_dir=signals,
        experiments_dir=tiny_experiments,
    )
    # a model that learned the rule orders >= 85% of held-out pairs right; one that did not, ~50%
    assert metrics["eval/pairwise_accuracy"] > 0.85, metrics


def test_pairwise_objective_uses_bradley_terry(
    tmp_path, tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments
):
    """Bradley-Terry on pairs of one slate. The click target varies inside every slate; the
    mid-term composite the signals stage learns may not (on the tiny world it is made of
    per-session credits only, and the stage then refuses pairwise training by name)."""
    params = tiny_params(
        **{k.replace(".", "__"): v for k, v in TINY_REWARD.items()}, reward_model__objective="pairwise"
    )
    metrics = run(
        params,
        tiny_raw,
        tiny_features,
        tiny_labels,
        tmp_path / "bt",
        "click",
        progress=False,
        signals_dir=tiny_signals,
        experiments_dir=tiny_experiments,
    )
    model = RewardModel.load(tmp_path / "bt")
    assert model.head.kind == "bradley_terry" and not model.head.calibrated
    assert "eval/rmse" not in metrics and 0 <= metrics["eval/pairwise_accuracy"] <= 1
    assert metrics["baseline/rmse"] > 0  # the baseline is always calibrated


def test_click_variant_learns_the_stream_label(
    tmp_path, tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments
):
    params = tiny_params(**{k.replace(".", "__"): v for k, v in TINY_REWARD.items()})
    run(
        params,
        tiny_raw,
        tiny_features,
        tiny_labels,
        tmp_path / "click",
        "click",
        progress=False,
        signals_dir=tiny_signals,
        experiments_dir=tiny_experiments,
    )
    model = RewardModel.load(tmp_path / "click")
    assert model.head.kind == "bce" and model.head.target == "streamed"
    p = model.score_frame(pl.read_parquet(tmp_path / "click" / EXAMPLE))
    assert ((p > 0) & (p < 1)).all()


def _warm_started(
    tmp_path, name, warm_start, variant, tiny_raw, tiny_features, tiny_labels, signals, library
):
    params = tiny_params(
        **{k.replace(".", "__"): v for k, v in TINY_REWARD.items()}, reward_model__train__learning_rate=1e-9
    )
    return run(
        params,
        tiny_raw,
        tiny_features,
        tiny_labels,
        tmp_path / name,
        variant,
        progress=False,
        signals_dir=signals,
        experiments_dir=library,
        warm_start=warm_start,
    )


def test_a_warm_start_fine_tunes_the_saved_model_with_its_encoder(
    tmp_path, tiny_reward_model, tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments
):
    """The loop's rounds fine-tune the last round's reward model. With a vanishing learning rate a
    warm-started model must score as the saved one does and keep its encoder files; a fresh model
    trained the same way (random weights) must not."""
    saved, _ = tiny_reward_model
    data = (tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments)
    _warm_started(tmp_path, "warm", saved, "midterm", *data)
    _warm_started(tmp_path, "fresh", None, "midterm", *data)
    rows = pl.read_parquet(saved / EXAMPLE)
    before = RewardModel.load(saved).score_frame(rows)
    warm, fresh = (RewardModel.load(tmp_path / n).score_frame(rows) for n in ("warm", "fresh"))
    np.testing.assert_allclose(warm, before, atol=1e-4)
    assert np.abs(fresh - before).max() > 1e-2
    for name in ("encoder.json", "tokenizer.json", "reward_model.json"):  # encoder and head kept
        assert (tmp_path / "warm" / name).read_bytes() == (saved / name).read_bytes(), name


def test_a_warm_start_from_another_kind_of_model_is_refused_by_name(
    tmp_path, tiny_reward_model, tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments
):
    saved, _ = tiny_reward_model
    data = (tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments)
    with pytest.raises(ValueError, match=rf"{saved}.*mse model of 'reward'.*bce model of 'streamed'"):
        _warm_started(tmp_path, "click", saved, "click", *data)
    with pytest.raises(FileNotFoundError, match="holds no saved reward model"):
        _warm_started(tmp_path, "none", tmp_path / "missing", "midterm", *data)
    assert not (tmp_path / "click").exists() and not (tmp_path / "none").exists()
