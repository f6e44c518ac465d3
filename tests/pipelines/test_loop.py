"""The closed loop on a tiny world: two rounds end to end, served propensities in the logs, resume."""

from __future__ import annotations

import json
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
