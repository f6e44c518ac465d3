"""No stale work: the logs' content keys the Kubeflow ingest, and the registry's champion is a
file DVC can see. (The compiled spec's side: tests/pipelines/test_compile.py.)"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml

from components.errors import EncoreError
from components.registry import client as R
from components.registry import snapshot
from pipelines import runtime
from tests.conftest import REPO
from tests.pipelines.helpers import tiny_params_dict


def _logs(folder, plays: bytes = b"plays-v1"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plays.parquet").write_bytes(plays)
    (folder / "impressions").mkdir(exist_ok=True)
    (folder / "impressions" / "part-0.parquet").write_bytes(b"impressions")
    return folder


def _source(folder) -> dict:
    return {"kind": "logs", "logs_dir": str(folder)}


def test_the_logs_fingerprint_follows_their_content(tmp_path):
    a, b = _logs(tmp_path / "a"), _logs(tmp_path / "b")
    first = runtime.logs_fingerprint(_source(a))
    assert first.startswith("sha256:") and first == runtime.logs_fingerprint(_source(b))  # content, not path
    (a / "plays.parquet").write_bytes(b"plays-v2")  # a week of new logs, same file names
    assert runtime.logs_fingerprint(_source(a)) != first
    _logs(b)
    (b / "impressions" / "part-1.parquet").write_bytes(b"more")  # a new partition
    assert runtime.logs_fingerprint(_source(b)) != first
    assert runtime.logs_fingerprint({"kind": "world", "logs_dir": str(a)}) == "world"
    assert runtime.logs_fingerprint(_source(tmp_path / "nowhere")).startswith("missing:")


def test_an_ingest_whose_logs_changed_underneath_fails(tmp_path, monkeypatch):
    """The fingerprint computed before the task is its cache key: an ingest that read something
    else must fail (a failed task is never cached), not be cached under that key."""
    import components.raw_logs.core as raw_logs_core

    logs = _logs(tmp_path / "logs")
    params = tiny_params_dict()
    params["tracking"]["enabled"] = False
    sections = {"tracking": params["tracking"], "source": _source(logs), "simulate": params["simulate"]}
    before = runtime.logs_fingerprint(sections["source"])

    class Metrics:
        def log_metric(self, key, value):
            pass

    monkeypatch.setattr(raw_logs_core, "run", lambda *a, **k: {"ingest/rows": 1.0})
    runtime.raw_logs(sections, str(tmp_path / "raw"), str(tmp_path / "world"), Metrics(), fingerprint=before)

    def ingest_while_logs_land(*args, **kwargs):
        (logs / "plays.parquet").write_bytes(b"plays-v2")
        return {"ingest/rows": 1.0}

    monkeypatch.setattr(raw_logs_core, "run", ingest_while_logs_land)
    with pytest.raises(EncoreError, match="changed while this run ingested them"):
        runtime.raw_logs(
            sections, str(tmp_path / "raw"), str(tmp_path / "world"), Metrics(), fingerprint=before
        )


def test_the_champion_snapshot_changes_exactly_when_the_champion_moves(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    c = R.connect(uri)
    assert snapshot.champion(c, "policy") == {
        "model": "policy",
        "alias": "champion",
        "version": None,
        "run_id": None,
        "fingerprint": None,
    }
    c.create_registered_model("policy")
    for fp in ("fp-1", "fp-2"):
        c.create_model_version("policy", source=str(tmp_path), tags={R.FINGERPRINT_TAG: fp})
    c.set_registered_model_alias("policy", "champion", "1")
    one = snapshot.champion(c, "policy")
    assert (one["version"], one["fingerprint"]) == (1, "fp-1")
    c.set_registered_model_alias("policy", "challenger", "2")  # another alias moving is not the champion
    assert snapshot.champion(c, "policy") == one
    c.set_registered_model_alias("policy", "champion", "2")
    assert snapshot.champion(c, "policy")["version"] == 2


def _cli(tmp_path, tracking_uri: str, out) -> subprocess.CompletedProcess:
    params = tiny_params_dict(tracking_uri)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, "-m", "components.registry.snapshot", "--params", str(tmp_path / "params.yaml")]
        + ["--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        },
    )


def test_the_snapshot_file_is_byte_identical_while_nothing_moves(tmp_path):
    """What the DVC stage writes: equal bytes on an unchanged registry, so evaluate stays cached."""
    out = tmp_path / "reports" / "champion.json"
    first = _cli(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", out)
    assert first.returncode == 0, first.stderr
    content = out.read_bytes()
    assert yaml.safe_load(content)["version"] is None
    again = _cli(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", out)
    assert again.returncode == 0 and out.read_bytes() == content


def test_an_unreachable_registry_fails_the_snapshot_naming_the_store(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "champion.json"
    proc = _cli(tmp_path, f"http://127.0.0.1:{port}", out)
    assert proc.returncode == 2 and not out.exists()
    assert f"error [champion]: model registry at http://127.0.0.1:{port}" in proc.stderr, proc.stderr
