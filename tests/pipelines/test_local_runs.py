"""End-to-end on tiny data: the KFP pipeline under kfp.local, `dvc repro` (twice), and `dvc repro`
on a user's logs with no world. `make test` runs the `dvc repro` one (the whole DAG, as a user
runs it); the other two are `extended` (`make test-extended`, which CI runs after `make test`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.params import RUNTIME_SECTIONS
from components.policy.model import RANKER_DIR
from components.reward.model import RewardModel
from components.world import has_truth
from pipelines.sweep import project_files
from tests.conftest import REPO
from tests.pipelines.helpers import tiny_params_dict, write_tiny_params

pytestmark = pytest.mark.slow


@pytest.mark.extended
def test_kfp_local_run_covers_the_dag(tmp_path, monkeypatch):
    from kfp import local

    from pipelines.training import training

    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    params = tiny_params_dict(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    training(**{section: params[section] for section in RUNTIME_SECTIONS})
    root = tmp_path / "root"
    reports = list(root.rglob("report"))
    assert reports and "<html" in reports[0].read_text().lower()
    raw = [p for p in root.rglob("raw_logs") if p.is_dir()]
    assert raw and (raw[0] / "impressions.parquet").exists()
    features = [p for p in root.rglob("feature_store") if (p / "train_frame.parquet").exists()]
    assert features and (features[0] / "feast" / "registry.db").exists()
    assert list(root.rglob("labels/labels.parquet"))
    gate = json.loads(next(root.rglob("evaluation/gate.json")).read_text())
    _assert_gate_follows_its_checks_and_the_truth(gate)
    summaries = [p.read_text() for p in root.rglob("summary") if p.is_file()]
    assert any("Encore evaluation summary" in s for s in summaries)
    assert any("Encore signal scorecard" in s for s in summaries)
    assert list(root.rglob("scorecard/weights.json")) and list(root.rglob("library/manifest.json"))
    assert any("Simulated A/B test" in p.read_text() for p in root.rglob("report") if p.is_file())
    metrics = [json.loads(p.read_text()) for p in root.rglob("executor_output.json")]
    assert metrics, "tasks must report outputs"
    # lineage: the registered policy names the KFP run that made it
    from mlflow import MlflowClient

    client = MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", registry_uri=f"sqlite:///{tmp_path}/mlflow.db"
    )
    version = client.get_model_version_by_alias("encore-policy", "challenger")
    assert version.tags["encore.pipeline_run_id"] not in ("", "dvc-local")
    # the gate's typed output reached the one register task: the champion moved exactly when it said promote
    champions = [v for v in client.search_model_versions("name='encore-policy'") if "champion" in v.aliases]
    assert bool(champions) == gate["promote"] and version.tags["encore.gate"] == gate["gate"]


def _assert_gate_follows_its_checks_and_the_truth(gate: dict) -> None:
    """The decision is the conjunction of its enforced checks, each check gave a reason, and in a
    world (truth known) the recorded verdict is the truth's: the gate never promotes a policy
    that is significantly worse than the baseline."""
    checks = gate["guardrails"]
    assert gate["promote"] == all(c["ok"] for c in checks.values() if c["enforced"]), checks
    assert gate["gate"] == ("promote" if gate["promote"] else "hold")
    assert len(gate["reasons"]) == len(checks) and {"support", "kl", "reward_model"} <= set(checks)
    verdict = gate["verdict"]
    assert verdict["right"] == (gate["promote"] == verdict["truly_better"]), verdict
    assert not (gate["promote"] and verdict["significant"] and verdict["true_lift"] < 0), verdict


def _registry(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _workspace(tmp_path: Path) -> Path:
    """A copy of the project as a user would have it: the files git knows (tracked or not ignored),
    less what a run does not need (the robustness suite's workspaces are made the same way)."""
    ws = tmp_path / "ws"
    for rel in project_files(REPO):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, ws / rel)
    write_tiny_params(ws / "params.yaml", tracking_uri=f"sqlite:///{ws}/mlflow.db")
    return ws


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "encore-test",
    "GIT_AUTHOR_EMAIL": "test@encore.invalid",
    "GIT_COMMITTER_NAME": "encore-test",
    "GIT_COMMITTER_EMAIL": "test@encore.invalid",
}


def _git(ws: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=ws, check=True, env={**os.environ, **GIT_IDENTITY})


def _dvc(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        **GIT_IDENTITY,
    }
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ws, env=env, capture_output=True, text=True
    )


def _ran(proc: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", proc.stdout))


def test_dvc_repro_runs_the_dag_then_is_a_no_op(tmp_path):
    ws = _workspace(tmp_path)
    subprocess.run(
        ["git", "init", "-q"], cwd=ws, check=True
    )  # a user's clone is a git repo; .dvc/ came with it
    first = _dvc(ws, "repro")
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in (
        "simulate",
        "validate",
        "experiments",
        "features",
        "label",
        "signals",
        "reward_model",
        "reward_model_click",
        "sft_policy",
        "rlhf_policy",
        "rlhf_policy_click",
        "loop",
        "champion",
        "evaluate",
        "register",
    ):
        assert f"Running stage '{stage}'" in first.stdout, stage
    assert (ws / "reports" / "validation.html").exists()
    assert (ws / "data" / "features" / "train_frame.parquet").exists()
    assert json.loads((ws / "metrics" / "label.json").read_text())["label/impressions"] > 0
    assert "Scorecard" in (ws / "reports" / "signals.html").read_text()
    weights = json.loads((ws / "data" / "signals" / "weights.json").read_text())
    assert (
        weights["active"]["columns"]
        and json.loads((ws / "metrics" / "experiments.json").read_text())["experiments/arms"] > 4
    )
    assert "Off-policy estimates" in (ws / "reports" / "evaluation" / "evaluation.html").read_text()
    # the reward model against the truth, every run: on uniformly random pairs and on the logged ones
    evaluated = json.loads((ws / "metrics" / "evaluate.json").read_text())
    for pairs in ("random", "logged"):
        assert -1 <= evaluated[f"reward_model/truth/{pairs}/spearman"] <= 1, evaluated
    assert "uniformly random (listener, track)" in (ws / "reports" / "evaluation" / "summary.md").read_text()
    # the closed loop ran its round; the A/B test has an arm for round 0, the final round is the challenger
    loop = json.loads((ws / "metrics" / "loop.json").read_text())
    assert loop["loop/rounds"] == 1 and "loop/round_1/ope/dr" in loop
    assert "ab/rlhf_midterm_round_0/active_days" in evaluated and "ab/rlhf_midterm/active_days" in evaluated
    assert "Closed loop (1 rounds" in (ws / "reports" / "evaluation" / "summary.md").read_text()
    # every RL policy carries the reward model it was trained against: its ranker when served
    # generate-then-rank (ab.lm_decoding: rank), registered along with it
    for policy, reward in (("policy", "reward"), ("policy_click", "reward_click")):
        ranker = ws / "models" / policy / RANKER_DIR
        assert (ranker / "model.safetensors").read_bytes() == (
            ws / "models" / reward / "model.safetensors"
        ).read_bytes()
    RewardModel.load(ws / "models" / "loop" / "policy" / RANKER_DIR)  # the loop's final round's, loadable
    record = json.loads((ws / "metrics" / "register.json").read_text())
    gate = json.loads((ws / "reports" / "evaluation" / "gate.json").read_text())
    _assert_gate_follows_its_checks_and_the_truth(gate)
    assert record["registered"] and record["gate"] == gate["gate"] and record["promoted"] == gate["promote"]
    client = _registry(f"sqlite:///{ws}/mlflow.db")
    found = client.search_model_versions("name='encore-policy'")
    aliases = [sorted(client.get_model_version("encore-policy", v.version).aliases) for v in found]
    assert aliases == [["challenger", "champion"] if gate["promote"] else ["challenger"]]
    assert json.loads((ws / "metrics" / "validate.json").read_text())
    # The registry's champion is outside DVC: its snapshot (stage `champion`) runs every time, and
    # evaluate + register rerun exactly when it moved - here, only if the first run promoted.
    second = _dvc(ws, "repro")
    assert second.returncode == 0, second.stdout + second.stderr
    moved = {"evaluate", "register"} if record["promoted"] else set()
    assert _ran(second) == {"champion"} | moved, second.stdout
    if moved:
        settled = _dvc(ws, "repro")
        assert settled.returncode == 0 and _ran(settled) == {"champion"}, settled.stdout

    # a one-line change in the world's A/B runner makes evaluate (and only what imports it) stale
    ab = ws / "components" / "world" / "ab.py"
    ab.write_text(ab.read_text() + "# a one-line change\n")
    status = _dvc(ws, "status")
    assert "evaluate:" in status.stdout and "components/world" in status.stdout, status.stdout
    assert "features:" not in status.stdout and "label:" not in status.stdout, status.stdout
    ab.write_text(ab.read_text().removesuffix("# a one-line change\n"))

    # a parameter of the validate section re-runs only validate: as the README shows, a DVC experiment
    _git(ws, "add", "-A")
    _git(ws, "commit", "-qm", "tiny run")
    third = _dvc(ws, "exp", "run", "-S", "validate.max_slate_size=40")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'validate'" in third.stdout and "Running stage 'simulate'" not in third.stdout
    assert "max_slate_size: 40" in (ws / "params.yaml").read_text()  # the experiment is in the workspace
    # validate's metrics are counts only, so downstream stages see an unchanged dependency
    assert "Running stage 'features'" not in third.stdout

    # real logs have no truth: the same evaluation reports estimates and ranking only, and says so
    no_truth = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.evaluate",
            "--world-dir",
            str(ws / "no_world"),
            "--report-dir",
            str(ws / "reports" / "no_truth"),
            "--metrics",
            str(ws / "metrics" / "no_truth.json"),
            "--no-progress",
        ],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{ws}/mlflow.db"},
    )
    assert no_truth.returncode == 0, no_truth.stdout + no_truth.stderr
    summary = (ws / "reports" / "no_truth" / "summary.md").read_text()
    assert "No ground truth exists" in summary and "Promotion gate" in summary
    flat = json.loads((ws / "metrics" / "no_truth.json").read_text())
    assert flat["eval/has_truth"] == 0.0 and "ope/rlhf_midterm/dr/value" in flat
    assert not any(key.startswith(("ab/", "truth/", "ope_error/")) for key in flat)


@pytest.mark.extended
def test_dvc_repro_on_a_users_logs_without_a_world_runs_through_register(tmp_path):
    """A user with their own logs: four contract tables in a folder, no world, no experiments
    table. The whole DAG runs through register; everything that needs the truth switches off
    (no A/B, no verdict, no true value in the RL curve) and the composite falls back to the fixed
    weights, saying why. (Real logs once crashed signals on the empty library, and rlhf_policy
    on the empty true-value column.)"""
    world_ws = _workspace(tmp_path / "world")
    subprocess.run(["git", "init", "-q"], cwd=world_ws, check=True)
    made = _dvc(world_ws, "repro", "simulate")
    assert made.returncode == 0, made.stdout + made.stderr
    logs = tmp_path / "user_logs"
    logs.mkdir()
    for name in ("impressions", "plays", "users", "tracks"):
        shutil.copy(world_ws / "data" / "raw" / f"{name}.parquet", logs)

    ws = _workspace(tmp_path / "user")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["source"].update(kind="logs", logs_dir=str(logs))
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    run = _dvc(ws, "repro")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    assert "Running stage 'register'" in run.stdout
    assert not has_truth(ws / "data" / "world")
    evaluation = json.loads((ws / "metrics" / "evaluate.json").read_text())
    assert evaluation and not [k for k in evaluation if k.startswith(("ab/", "truth/", "gate/verdict"))]
    assert not [k for k in json.loads((ws / "metrics" / "rlhf_policy.json").read_text()) if "true" in k]
    weights = json.loads((ws / "data" / "signals" / "weights.json").read_text())["active"]
    assert weights["source"] == "fixed" and "no experiment library" in weights["why"]
    assert json.loads((ws / "metrics" / "register.json").read_text())["registered"]
