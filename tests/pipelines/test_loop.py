"""The closed loop on a tiny world: two rounds end to end, served propensities in the logs, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from components import contract
from tests.conftest import tiny_policy_params

LOOP = {
    "loop__rounds": 2,
    "loop__days_per_round": 3,
    "loop__truth_listeners": 150,
    "loop__max_slates": 300,
    "loop__served_examples": 2000,
    "loop__rl_start": "last",
}


@pytest.fixture(scope="module")
def round0(tmp_path_factory, tiny_raw, tiny_features, tiny_reward_model, tiny_sft, tiny_logs) -> Path:
    """Round 0: the tiny world's RL policy (a few GRPO steps against the tiny reward model)."""
    from components.rlhf_policy.core import run

    root = tmp_path_factory.mktemp("loop_round0")
    run(
        tiny_policy_params(),
        tiny_raw,
        tiny_features,
        tiny_sft[0],
        tiny_reward_model[0],
        root / "policy",
        root / "checkpoints",
        world_dir=tiny_logs[1],
        progress=False,
    )
    return root / "policy"


def _start(tiny_logs, tiny_features, tiny_labels, tiny_reward_model, policy):
    from pipelines.loop.core import RoundDirs

    raw, world = tiny_logs
    return RoundDirs(raw, world, tiny_features, tiny_labels, tiny_reward_model[0], policy)


def test_two_rounds_serve_log_retrain_and_a_killed_round_resumes(
    tmp_path,
    monkeypatch,
    tiny_logs,
    tiny_features,
    tiny_labels,
    tiny_signals,
    tiny_experiments,
    tiny_reward_model,
    tiny_sft,
    round0,
):
    import components.rlhf_policy.core as rlhf
    from pipelines.loop.core import ROUNDS_JSON, run
    from pipelines.loop.serving import served_policy_id

    params = tiny_policy_params(**LOOP)
    start = _start(tiny_logs, tiny_features, tiny_labels, tiny_reward_model, round0)
    work, out = tmp_path / "work", tmp_path / "out"

    # inject the failure: RL dies in round 2, after its logs, features, labels and reward model exist
    real_rl = rlhf.run
    started_from: dict[str, Path] = {}

    def dies_in_round_2(params, raw_dir, features_dir, start_dir, *args, **kwargs):
        started_from[Path(raw_dir).parent.name] = Path(start_dir)
        if "round_2" in str(raw_dir):
            raise RuntimeError("killed")
        return real_rl(params, raw_dir, features_dir, start_dir, *args, **kwargs)

    monkeypatch.setattr(rlhf, "run", dies_in_round_2)
    with pytest.raises(RuntimeError, match="killed"):
        run(params, start, tiny_signals, tiny_experiments, tiny_sft[0], work, out, progress=False)
    assert (work / "round_1" / "round.json").exists()
    assert (work / "round_2" / "reward").exists() and not (work / "round_2" / "policy").exists()
    assert not out.exists(), "a failed loop must not leave its output as if complete"
    kept = {p: p.stat().st_mtime_ns for p in (work / "round_1" / "round.json", work / "round_2" / "raw")}

    # rl_start "last": each round's RL starts from (and is KL-anchored to) the round before's policy
    assert started_from == {"round_1": round0, "round_2": work / "round_1" / "policy"}
    # rm_warm_start: each round's reward model fine-tunes the round before's, keeping its encoder
    encoder = (tiny_reward_model[0] / "encoder.json").read_bytes()
    assert (work / "round_1" / "reward" / "encoder.json").read_bytes() == encoder
    assert (work / "round_2" / "reward" / "encoder.json").read_bytes() == encoder

    monkeypatch.setattr(rlhf, "run", real_rl)
    metrics = run(params, start, tiny_signals, tiny_experiments, tiny_sft[0], work, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "finished steps were redone on resume"

    # two rounds, each on logs that grew by days_per_round, the last round's policy is the output
    rounds = json.loads((out / ROUNDS_JSON).read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert metrics["loop/rounds"] == 2
    original_days = contract.read_manifest(tiny_logs[0])["days"]
    assert contract.read_manifest(work / "round_2" / "raw")["days"] == original_days + 6
    for name in ("policy", "reward", "rounds/round_0/policy", "rounds/round_1/policy"):
        assert (out / name).is_dir(), name
    final = (work / "round_2" / "policy" / "model.safetensors").read_bytes()
    assert (out / "policy" / "model.safetensors").read_bytes() == final

    # the second round's new days carry the served policy's id and the sampler's propensities
    imp = pl.read_parquet(contract.IMPRESSIONS.file(work / "round_2" / "raw"))
    treated = imp.filter(pl.col("policy_id") == served_policy_id(params.loop, 2))
    assert treated.height > 0
    assert imp.filter(pl.col("policy_id") == served_policy_id(params.loop, 1)).height > 0
    p = treated["propensity"].to_numpy()
    assert np.isfinite(p).all() and (p > 0).all() and (p <= 1).all()
    assert imp["event_id"].n_unique() == imp.height, "event ids must continue, not repeat"
    # each listener is in one arm, fixed by the service's hash
    logged_before = pl.read_parquet(contract.IMPRESSIONS.file(tiny_logs[0]), columns=["event_id"]).height
    arms = (
        imp.filter(pl.col("event_id") >= logged_before)
        .group_by("user_id")
        .agg((pl.col("policy_id") == 0).n_unique().alias("arms"))
    )
    assert arms["arms"].max() == 1

    # every round was measured against the truth, the estimates from stochastic logs included
    for row in rounds[1:]:
        assert row["ope/slates"] > 0
        assert np.isfinite(row["ope/dr"]) and np.isfinite(row["truth/value_per_slot"])
        assert 0 < row["ope/iips_ess_share"] <= 1
        assert -1 <= row["reward_model/random/spearman"] <= 1
        assert row["train/served_examples"] > 0


@pytest.fixture
def lagged_signals(tmp_path, tiny_signals, params) -> Path:
    """The tiny world's signals output with the hand-set composite active (as in a world where
    the learned one predicts no better than 'no effect'): its labels look up to 14 days ahead."""
    from components.reward.composite import WEIGHTS_FILE, fixed_weights

    out = tmp_path / "lagged_signals"
    shutil.copytree(tiny_signals, out)
    weights = json.loads((out / WEIGHTS_FILE).read_text())
    weights["active"] = {
        "source": "fixed",
        "columns": fixed_weights(params.label.composite.fixed, params.label),
        "why": "a test: the composite whose labels mature after a round's days",
    }
    (out / WEIGHTS_FILE).write_text(json.dumps(weights))
    return out


@pytest.fixture
def start(tiny_logs, tiny_features, tiny_labels, tiny_reward_model, round0):
    """Round 0's dirs: the tiny world's logs, features, labels, reward model and RL policy."""
    return _start(tiny_logs, tiny_features, tiny_labels, tiny_reward_model, round0)


def test_a_round_learns_from_a_composite_whose_labels_mature_after_its_days(
    tmp_path, monkeypatch, start, tiny_logs, tiny_experiments, tiny_sft, lagged_signals
):
    """A 3-day round of a composite that looks 14 days ahead: the round serves 3 + 14 days, its
    first 3 are labelled, the truth is a number and the reward model learns from served slates
    (the long-tail world's loop once had none: NaN truth, no served example, no error)."""
    import components.rlhf_policy.core as rlhf
    from components.reward.composite import active_weights, composite_lag
    from pipelines.loop.core import run

    params = tiny_policy_params(**(LOOP | {"loop__rounds": 1}))
    lag = composite_lag(active_weights(lagged_signals), params.label)
    assert lag > params.loop.days_per_round  # every day of a plain round would be censored

    def stop(*args, **kwargs):
        raise RuntimeError("stopped after the reward model")

    monkeypatch.setattr(rlhf, "run", stop)
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="stopped after the reward model"):
        run(
            params,
            start,
            lagged_signals,
            tiny_experiments,
            tiny_sft[0],
            work,
            tmp_path / "out",
            progress=False,
        )

    original_days = contract.read_manifest(tiny_logs[0])["days"]
    served_days = params.loop.days_per_round + lag
    assert contract.read_manifest(work / "round_1" / "raw")["days"] == original_days + served_days
    truth = json.loads((work / "round_0" / "round.json").read_text())
    assert truth["truth/labelled_slots"] > 0 and np.isfinite(truth["truth/value_per_slot"])
    rm = json.loads((work / "round_1" / "reward_model_metrics.json").read_text())
    assert rm["train/served_examples"] > 0


def test_a_round_whose_served_days_are_all_censored_fails_before_training(
    tmp_path, monkeypatch, start, tiny_experiments, tiny_sft, lagged_signals
):
    """Inject the defect: the round serves only ``days_per_round`` days of a 14-day composite. The
    loop must stop after labelling, naming the censored columns — not train on nothing."""
    import pipelines.loop.core as core
    from components.errors import EncoreError

    params = tiny_policy_params(**(LOOP | {"loop__rounds": 1}))
    work, out = tmp_path / "work", tmp_path / "out"
    monkeypatch.setattr(core, "round_days", lambda params, weights: params.loop.days_per_round)
    core._reset_if_stale(params, start, tiny_sft[0], work)
    (work / "round_0").mkdir()
    (work / "round_0" / "round.json").write_text(json.dumps({"round": 0}))  # measured: skip to round 1

    with pytest.raises(EncoreError, match=r"round 1: the 3 days it served .* artist_return_14d null on"):
        core.run(params, start, lagged_signals, tiny_experiments, tiny_sft[0], work, out, progress=False)
    assert (work / "round_1" / "labels").exists()
    assert not (work / "round_1" / "reward").exists(), "a reward model was trained on censored days"
    assert not out.exists()


def test_rounds_made_from_other_params_are_not_resumed(
    tmp_path, tiny_logs, tiny_features, tiny_labels, tiny_reward_model, tiny_sft, round0
):
    """A saved round is reused only by the same params, code and round-0 inputs: any other
    params start the rounds over (a round of another setting must never pass for this one's)."""
    from pipelines.loop.core import _reset_if_stale

    start = _start(tiny_logs, tiny_features, tiny_labels, tiny_reward_model, round0)
    work = tmp_path / "work"
    params = tiny_policy_params(**LOOP)
    _reset_if_stale(params, start, tiny_sft[0], work)
    (work / "round_1").mkdir()
    (work / "round_1" / "round.json").write_text("{}")
    _reset_if_stale(params, start, tiny_sft[0], work)
    assert (work / "round_1" / "round.json").exists(), "the same setting must resume"
    _reset_if_stale(tiny_policy_params(**(LOOP | {"loop__served_examples": 10})), start, tiny_sft[0], work)
    assert not (work / "round_1").exists(), "another setting's round was kept"
