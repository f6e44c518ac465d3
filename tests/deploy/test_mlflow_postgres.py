"""The k8s MLflow server configuration, run for real against PostgreSQL.

The server's command line is taken from the rendered prod Deployment (command, args, env
from its ConfigMap); only what differs on this machine is substituted: the addresses (the
database, a local artifacts directory instead of the S3 bucket, a loopback port), TLS to the
database (the local PostgreSQL has none) and the Secret's values. A client then does over
HTTP what the pipeline will: log a run with an artifact, register a model version, set the
alias the evaluate/register stages use, and read everything back.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from components.tracking import OFFLINE_ENV
from tests.deploy.manifests import Obj, one
from tests.deploy.servers import free_port, listen_locally, serving
from tests.service_checks import PG_HOST, PG_PORT, PG_USER, scratch_database

pytestmark = pytest.mark.integration


def server_command(
    objects: list[Obj], overrides: dict[str, str], secrets: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the MLflow container as Kubernetes would start it: env resolved from
    the rendered ConfigMaps (``overrides`` replace values by name) and the Secret values
    given, then ``$(VAR)`` references in command/args expanded."""
    deployment = one(objects, "Deployment", "mlflow")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        env[entry["name"]] = _env_value(entry, objects, secrets)
    env.update({k: v for k, v in overrides.items() if k in env})
    argv = [
        re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], part)
        for part in container["command"] + container["args"]
    ]
    return argv, env


def _env_value(entry: dict[str, Any], objects: list[Obj], secrets: dict[str, str]) -> str:
    if "value" in entry:
        return entry["value"]
    source = entry["valueFrom"]
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return one(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    if "secretKeyRef" in source:
        return secrets[source["secretKeyRef"]["key"]]
    raise ValueError(f"unsupported env source {source}")


def local_database_uri(manifest_uri: str, dbname: str) -> str:
    """The manifest's URI with only the address replaced: the scheme (``+psycopg2``: the
    SQLAlchemy driver) and the query string stay as deployed."""
    parts = urlsplit(manifest_uri)
    return urlunsplit(parts._replace(netloc=f"{PG_USER}@{PG_HOST}:{PG_PORT}", path=f"/{dbname}"))


@pytest.fixture
def database() -> Iterator[str]:
    """Name of a fresh, uniquely named database, dropped afterwards."""
    with scratch_database("encore_mlflow") as name:
        yield name


@pytest.fixture
def mlflow_server(rendered, database, tmp_path) -> Iterator[str]:
    """The prod overlay's MLflow server on a loopback port; yields its URL."""
    port = free_port()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    manifest_uri = one(rendered["prod"], "ConfigMap", "mlflow-config")["data"]["backend-store-uri"]
    argv, env = server_command(
        rendered["prod"],
        overrides={
            "MLFLOW_BACKEND_STORE_URI": local_database_uri(manifest_uri, database),
            "MLFLOW_ARTIFACTS_DESTINATION": artifacts.as_uri(),
            "PGSSLMODE": "disable",  # the local PostgreSQL has no TLS; the manifests require it
        },
        secrets={"postgres-password": "", "s3-access-key-id": "unused", "s3-secret-access-key": "unused"},
    )
    assert argv[:2] == ["mlflow", "server"], argv
    argv = [str(Path(sys.executable).parent / "mlflow"), *listen_locally(argv, port)[1:]]
    home = tmp_path / "home"  # the container's emptyDir $HOME
    home.mkdir()
    env = {**os.environ, **OFFLINE_ENV, **env, "HOME": str(home)}
    with serving("mlflow server", argv, env, tmp_path, port, tmp_path / "server.log") as url:
        yield url


def test_server_command_is_the_manifests(rendered):
    """What the integration test runs is the Deployment's command line, references resolved."""
    argv, env = server_command(
        rendered["prod"],
        {},
        {"postgres-password": "pw", "s3-access-key-id": "id", "s3-secret-access-key": "key"},
    )
    assert argv[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in argv
    assert f"--backend-store-uri={env['MLFLOW_BACKEND_STORE_URI']}" in argv
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the image ships psycopg2.
    assert (
        env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://") and env["PGSSLMODE"] == "require"
    )
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://") and env[
        "MLFLOW_S3_ENDPOINT_URL"
    ].startswith("https://")
    assert env["PGPASSWORD"] == "pw" and env["AWS_SECRET_ACCESS_KEY"] == "key"
    assert not any("$(" in part for part in argv)


def test_runs_models_and_aliases_round_trip_through_postgres(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    experiment_id = client.create_experiment("encore-deploy-check")
    run = client.create_run(experiment_id, tags={"encore.stage": "reward_model"})
    run_id = run.info.run_id
    client.log_param(run_id, "seed", 7)
    client.log_metric(run_id, "val_auc", 0.75, step=1)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.txt").write_text("0.1 0.2 0.3\n")
    # Artifacts go through the server's proxy (--serve-artifacts) to the artifacts destination.
    client.log_artifacts(run_id, str(model_dir), artifact_path="model")
    client.set_terminated(run_id)

    client.create_registered_model("encore-reward-model")
    version = client.create_model_version(
        "encore-reward-model", source=f"{run.info.artifact_uri}/model", run_id=run_id
    )
    client.set_registered_model_alias("encore-reward-model", "champion", version.version)

    by_alias = client.get_model_version_by_alias("encore-reward-model", "champion")
    assert by_alias.version == version.version and by_alias.run_id == run_id
    fetched = client.get_run(run_id)
    assert fetched.data.params == {"seed": "7"} and fetched.data.metrics == {"val_auc": 0.75}
    assert fetched.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "clients must not need S3 credentials"
    downloaded = client.download_artifacts(run_id, "model/weights.txt", str(tmp_path / "down"))
    assert Path(downloaded).read_text() == "0.1 0.2 0.3\n"
