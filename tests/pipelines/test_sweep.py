"""The robustness suite under DVC (``python -m pipelines.sweep``) on tiny worlds: one workspace per
(world, seed), a failing world recorded as failed without stopping the others, and a re-run that
only re-runs what is stale."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.pipelines.helpers import tiny_params_dict

pytestmark = [pytest.mark.slow, pytest.mark.extended]


def _sweep(params_path, out_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.sweep", "-p", str(params_path), "--out-dir", str(out_dir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )


def test_each_world_gets_its_own_workspace_and_a_failing_world_does_not_stop_the_others(tmp_path):
    raw = tiny_params_dict(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    # the injected failure: a world logged for fewer days than validation demands
    raw["robustness"]["worlds"] = [
        {"name": "short", "mechanism": "too few days to validate", "set": {"simulate.days": 10}},
        {
            "name": "fatigue",
            "mechanism": "artist fatigue",
            "set": {"simulate.dynamics.artist_fatigue_gain": 0.5},
        },
    ]
    raw["robustness"]["seeds"] = [3]
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "suite"

    first = _sweep(params_path, out, "--target", "validate", "--no-progress")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "run short-s3 failed" in first.stderr and "run fatigue-s3" not in first.stderr
    short_log = (out / "runs" / "short-s3" / "repro.log").read_text()
    assert "validate.min_days" in short_log, short_log[-2000:]
    fatigue = out / "runs" / "fatigue-s3"
    assert (fatigue / "data" / "raw" / "impressions.parquet").exists()
    assert (fatigue / "reports" / "validation.html").exists()
    # the workspace's params are the project's with the world's key and the seed, nothing else
    ws_params = yaml.safe_load((fatigue / "params.yaml").read_text())
    assert (
        ws_params["simulate"]["dynamics"]["artist_fatigue_gain"] == 0.5 and ws_params["simulate"]["seed"] == 3
    )
    assert ws_params["tracking"]["uri"] == "sqlite:///mlflow.db"  # its own store and registry
    assert ws_params["rlhf_policy"] == raw["rlhf_policy"]

    # again, the fatigue world only: nothing is stale, so nothing runs; the registry an earlier run
    # left (here a stand-in file) is cleared, so every suite run's gate decides against logging
    (fatigue / "mlflow.db").write_text("an earlier run's registry")
    again = _sweep(params_path, out, "--target", "validate", "--world", "fatigue", "--no-progress")
    assert not (fatigue / "mlflow.db").exists()
    assert again.returncode == 0, again.stdout + again.stderr
    second = (fatigue / "repro.log").read_text().rsplit("$ -m dvc repro", 1)[1]
    assert "Running stage" not in second and "didn't change" in second, second

    unknown = _sweep(params_path, out, "--world", "nope", "--no-progress")
    assert unknown.returncode == 2 and "no world named ['nope']" in unknown.stderr
