"""Atomic outputs clean up after a killed run; curves with empty cells log what they have."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from components.io import TMP_SUFFIX, atomic_dir, atomic_file, remove_leftovers
from tests.conftest import REPO

KILLED_WRITE = """
import os, signal, sys
from components.io import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "half.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / "signals"
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.endswith(TMP_SUFFIX)]
    assert len(left) == 1 and not target.exists()
    neighbour = tmp_path / f".signals.html.abc123{TMP_SUFFIX}"  # another target's temporary
    neighbour.write_text("not ours")
    with atomic_dir(target) as tmp:
        (tmp / "done.txt").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["signals", neighbour.name])
    assert (target / "done.txt").read_text() == "done"
    with atomic_file(tmp_path / "signals.html") as tmp:
        tmp.write_text("<html>")
    assert not neighbour.exists() and (tmp_path / "signals.html").read_text() == "<html>"


def test_leftovers_are_matched_by_the_exact_target_name(tmp_path):
    (tmp_path / ".raw.old").mkdir()
    (tmp_path / f".raw.x1y2{TMP_SUFFIX}").mkdir()
    (tmp_path / f".raw_logs.x1y2{TMP_SUFFIX}").mkdir()
    (tmp_path / ".raw.keep").write_text("a user's file")
    gone = remove_leftovers(tmp_path / "raw")
    assert sorted(p.name for p in gone) == [".raw.old", f".raw.x1y2{TMP_SUFFIX}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".raw.keep", f".raw_logs.x1y2{TMP_SUFFIX}"]


def test_a_curve_with_empty_cells_logs_the_numbers_and_skips_the_rest(tmp_path, monkeypatch):
    """On real logs there is no world: the RL curve's true-value column is empty (None). Logging
    it must not crash the stage after training (it did: float(None))."""
    import mlflow

    from components.tracking import StageRun

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("curves")  # not the default id another test's store left active
    rows = [
        {"step": 1, "reward": 0.5, "true_value": None},
        {"step": 2, "reward": 0.7, "true_value": float("nan")},
    ]
    with mlflow.start_run() as run:
        StageRun(active=True).log_curve(rows, "rl")
    logged = mlflow.MlflowClient().get_metric_history(run.info.run_id, "rl/reward")
    assert [m.value for m in logged] == pytest.approx([0.5, 0.7])
    assert mlflow.MlflowClient().get_metric_history(run.info.run_id, "rl/true_value") == []


def _stage_runs(uri: str, experiment: str) -> list:
    import mlflow

    exp = mlflow.MlflowClient(uri).get_experiment_by_name(experiment)
    return [] if exp is None else mlflow.MlflowClient(uri).search_runs([exp.experiment_id])


def test_a_rejected_input_records_no_mlflow_run_and_a_success_records_one(tmp_path, monkeypatch):
    """A failed stage (here: input refused with a ContractError) must leave nothing in the tracking
    store — it used to leave one run per failure; a successful one leaves exactly one run."""
    from components.errors import ContractError
    from components.stage import execute
    from tests.conftest import tiny_params

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    params = tiny_params(tracking__enabled=True, tracking__experiment="rejections")

    def refuse(_p):
        raise ContractError("impressions.parquet: column 'ts' has 3 of 10 rows before signup")

    with pytest.raises(ContractError):
        execute("validate", ("validate",), params, refuse, tmp_path / "failed.json")
    assert _stage_runs(uri, "rejections") == []
    assert not (tmp_path / "failed.json").exists()

    execute("validate", ("validate",), params, lambda _p: {"validate/rows": 10}, tmp_path / "ok.json")
    (run,) = _stage_runs(uri, "rejections")
    assert run.data.metrics["validate/rows"] == 10 and run.info.status == "FINISHED"
    assert (tmp_path / "ok.json").exists()
