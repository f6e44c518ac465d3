"""The robustness suite's settings and table: worlds validated at load, one run per (world, seed),
each run's params differing from the project's only in the world's keys and seed, and a table
that counts what held and what did not."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import yaml

from components.errors import ParamsError
from components.params import load_params
from components.robustness.settings import kfp_runs, run_params, suite_runs, world_sections
from components.robustness.table import (
    TABLE_JSON,
    TABLE_MD,
    TABLE_PNG,
    row_from_dict,
    row_from_metrics,
    write,
)
from tests.conftest import REPO


def _worlds(*sets: dict) -> list[dict]:
    return [{"name": f"w{i}", "mechanism": "m", "set": s} for i, s in enumerate(sets)]


@pytest.mark.parametrize(
    ("world_set", "named"),
    [
        ({"simulate.dynamics.habit_gainn": 0.1}, "unknown key 'habit_gainn'"),
        ({"simulate.dynamics.habit_gain": -1.0}, "simulate.dynamics.habit_gain: Input should be greater"),
        ({"rlhf_policy.beta": 0.5}, "changes simulate.* keys only"),
        ({"simulate.seed": 3}, "changes simulate.* keys only"),
    ],
)
def test_a_bad_world_fails_at_load_naming_the_world_and_key(world_set, named):
    with pytest.raises(ParamsError) as err:
        load_params(REPO / "params.yaml", {"robustness.worlds": _worlds({}, world_set)})
    assert named in str(err.value) and "w1" in str(err.value), str(err.value)


def test_every_world_runs_once_per_seed_with_only_its_keys_and_seed_changed():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["robustness"]["seeds"] = [1, 2]
    params = load_params(REPO / "params.yaml", {"robustness.seeds": [1, 2]})
    runs = suite_runs(params)
    assert [r.name for r in runs] == [f"{w.name}-s{s}" for w in params.robustness.worlds for s in (1, 2)]
    fatigue = next(r for r in runs if r.world.name == "artist_fatigue" and r.seed == 2)
    out = run_params(raw, fatigue, tracking_uri="sqlite:///own.db")
    assert out["simulate"]["seed"] == 2 and out["tracking"]["uri"] == "sqlite:///own.db"
    assert out["simulate"]["dynamics"]["artist_fatigue_gain"] == 0.5
    # nothing else moved: put back the world's keys, the seed and the store, and it is params.yaml
    out["simulate"]["dynamics"]["artist_fatigue_gain"] = raw["simulate"]["dynamics"]["artist_fatigue_gain"]
    out["simulate"]["dynamics"]["artist_fatigue_decay"] = raw["simulate"]["dynamics"]["artist_fatigue_decay"]
    out["simulate"]["seed"], out["tracking"]["uri"] = raw["simulate"]["seed"], raw["tracking"]["uri"]
    assert out == raw


def test_kfp_world_sections_give_each_run_its_own_registry_names():
    params = load_params(REPO / "params.yaml")
    sections = params.sections_dump("simulate", "register", "tracking")
    run = next(r for r in kfp_runs(params) if r["world"] == "long_tail")
    out = world_sections(sections["simulate"], sections["register"], sections["tracking"], run)
    assert out["simulate"]["catalogue"]["n_tracks"] == 6000 and out["simulate"]["seed"] == run["seed"]
    assert out["register"]["policy_model"] == f"encore-policy-{run['name']}"
    assert out["tracking"]["experiment"].endswith(run["name"])
    with pytest.raises(KeyError):
        world_sections(
            sections["simulate"],
            sections["register"],
            sections["tracking"],
            {**run, "set": {"simulate.nope.x": 1}},
        )


def _metrics(midterm: tuple[float, float, float], promote: bool, gate_true: float) -> dict[str, float]:
    m = {"eval/has_truth": 1.0, "ab/logging/active_days": 19.5}
    arms = {"sft": (-0.3, -0.4, -0.2), "rlhf_click": (-1.2, -1.3, -1.1), "rlhf_midterm": midterm}
    arms["long_term_oracle"] = (4.9, 4.7, 5.1)
    for arm, (est, low, high) in arms.items():
        key = f"ab/lift_vs_logging/{arm}/active_days"
        m |= {key: est, f"{key}_low": low, f"{key}_high": high}
        m |= {f"ab/{arm}/distinct_artists": 15.0, f"ab/{arm}/catalogue_coverage": 0.05}
    key = "ab/lift_vs_rlhf_click/rlhf_midterm/active_days"
    m |= {key: midterm[0] + 1.2, f"{key}_low": midterm[1] + 1.2, f"{key}_high": midterm[2] + 1.2}
    m |= {"ab/logging/distinct_artists": 23.0, "ab/logging/catalogue_coverage": 0.4}
    m |= {"gate/promote": float(promote), "gate/lift": 1.5, "gate/lift_low": 1.1, "gate/lift_high": 1.9}
    m |= {"gate/verdict/right": float(promote == (gate_true > 0)), "gate/verdict/true_lift": gate_true}
    m |= {"reward_model/truth/random/spearman": 0.2}
    # the closed loop's round 0 (the RL stage's policy) as its own arm; the loop's final = rlhf_midterm
    key = "ab/lift_vs_logging/rlhf_midterm_round_0/active_days"
    m |= {key: 0.5, f"{key}_low": 0.4, f"{key}_high": 0.6}
    key = "ab/lift_vs_rlhf_midterm_round_0/rlhf_midterm/active_days"
    m |= {key: midterm[0] - 0.5, f"{key}_low": midterm[1] - 0.5, f"{key}_high": midterm[2] - 0.5}
    return m


def test_the_table_counts_wins_and_a_wrong_promotion(tmp_path):
    rows = [
        row_from_metrics("a-s1", "a", 1, "default", 600.0, _metrics((0.8, 0.3, 1.3), True, 0.8)),
        row_from_metrics("b-s1", "b", 1, "fatigue", 700.0, _metrics((-0.2, -0.3, -0.1), True, -0.2)),
        row_from_metrics("c-s1", "c", 1, "tail", 650.0, _metrics((0.1, -0.1, 0.3), False, 0.1)),
    ]
    failed = row_from_dict(
        asdict(rows[0]) | {"run": "d-s1", "world": "d", "status": "failed", "log": "x.log"}
    )
    totals = write([*rows, failed], tmp_path)
    assert totals["runs"] == 4 and totals["failed"] == 1
    assert totals["midterm_beats_logging"] == 1  # only a: c's interval crosses zero
    assert totals["midterm_beats_click"] == 3  # vs click-RL every interval here lies above zero
    assert totals["loop_beats_single_round"] == 0  # a's loop-vs-round-0 interval [-0.2, +0.8] crosses zero
    assert rows[0].lift_vs_logging["rlhf_midterm_round_0"].estimate == 0.5
    # a: promoted a winner (right); b: promoted a loser (wrong); c: held a small winner (wrong)
    assert totals["gate_promoted_a_loser"] == 1 and totals["gate_right"] == 1
    md = (tmp_path / TABLE_MD).read_text()
    assert "**wrong**" in md and "**failed** (x.log)" in md and "fatigue" in md
    assert (
        "| +0.50 [+0.40, +0.60] | +0.80 [+0.30, +1.30] | +0.30 [-0.20, +0.80] |" in md
    )  # round 0, final, final - round 0
    saved = json.loads((tmp_path / TABLE_JSON).read_text())
    assert [row_from_dict(r) for r in saved["runs"]][:3] == rows
    assert (tmp_path / TABLE_PNG).stat().st_size > 10_000


def test_a_run_without_truth_is_refused():
    with pytest.raises(ValueError, match="no ground truth"):
        row_from_metrics("x-s1", "x", 1, "m", 1.0, {"eval/has_truth": 0.0})
