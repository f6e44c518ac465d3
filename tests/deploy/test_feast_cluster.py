"""Feast in the cluster (k8s/base/feast/): the manifests' wiring, and the configuration run for
real against PostgreSQL (SQL registry) and Redis (online store).

Offline: the feature server and the materialisation CronJob mount the ConfigMap generated from
``k8s/base/feast/feature_store.yaml`` and point ENCORE_FEAST_CONFIG / FEAST_FS_YAML_FILE_PATH at
it; every variable the file reads is set in both pods, credentials only from Secrets.

Integration: the real ``features`` stage with ``features.store: cluster`` and exactly that file
(only the addresses come from this machine, through the same environment variables the pods
set), then the feature server's and the CronJob's command lines as rendered, on loopback.
A unique Feast project keeps the Redis keys apart from anything else on the local Redis.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
import yaml

from components.params import load_params
from components.tracking import OFFLINE_ENV
from tests.deploy.manifests import K8S, OVERLAYS, REPO, Obj, find, one, pod_specs
from tests.deploy.servers import free_port, listen_locally, serving
from tests.feast_checks import assert_online_equals_latest_offline, latest_per_entity
from tests.service_checks import PG_HOST, PG_PORT, PG_USER, require, scratch_database

FEAST_DIR = K8S / "base" / "feast"
FEAST_YAML = FEAST_DIR / "feature_store.yaml"
SERVER = ("Deployment", "feast-feature-server")
CRONJOB = ("CronJob", "feast-materialize")
# Whoever holds these values holds the registry or the online store: Secrets only.
CREDENTIALS = {"FEAST_REGISTRY_USER", "FEAST_REGISTRY_PASSWORD", "REDIS_CONNECTION"}
SECRET_EXAMPLES = {
    "encore-feast-registry": FEAST_DIR / "feast-registry.secret.example.env",
    "encore-redis": FEAST_DIR / "redis.secret.example.env",
}

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


# --------------------------------------------------------------------------- helpers


def referenced_vars(text: str) -> set[str]:
    """The ``${NAME}`` references, as Encore's repo_config expands them."""
    return set(re.findall(r"\$\{(\w+)\}", text))


def pod_spec(objects: list[Obj], kind: str, name: str) -> Obj:
    target = one(objects, kind, name)
    return next(spec for obj, spec in pod_specs([target]))


def container(objects: list[Obj], kind: str, name: str) -> Obj:
    containers = pod_spec(objects, kind, name)["containers"]
    assert len(containers) == 1, f"{kind}/{name}: one container expected"
    return containers[0]


def generated_config(objects: list[Obj]) -> Obj:
    """The ConfigMap kustomize generated from feature_store.yaml (its data: the file, verbatim)."""
    text = FEAST_YAML.read_text()
    found = [cm for cm in find(objects, "ConfigMap") if cm.get("data") == {"feature_store.yaml": text}]
    assert len(found) == 1, "expected one ConfigMap holding k8s/base/feast/feature_store.yaml verbatim"
    return found[0]


def config_mount(objects: list[Obj], kind: str, name: str) -> Obj:
    """The volumeMount of the generated ConfigMap in this workload's container."""
    spec = pod_spec(objects, kind, name)
    cm_name = generated_config(objects)["metadata"]["name"]
    volumes = [v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name") == cm_name]
    assert len(volumes) == 1, f"{kind}/{name} does not mount {cm_name}"
    mounts = [m for m in container(objects, kind, name)["volumeMounts"] if m["name"] == volumes[0]]
    assert len(mounts) == 1, f"{kind}/{name}: volume {volumes[0]} not mounted"
    return mounts[0]


def k8s_expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion of command/args: ``$$`` is a literal ``$``, ``$(VAR)`` a
    variable of the container's env; any other reference stays as written."""

    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, text)


def container_env(
    objects: list[Obj], c: Obj, overrides: dict[str, str], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The container's env as Kubernetes resolves it: ConfigMap values from the render
    (``overrides`` replace them by variable name), Secret values from ``secrets``."""
    env: dict[str, str] = {}
    for entry in c.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = entry["value"]
            continue
        source = entry["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[name] = one(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = secrets[ref["name"]][ref["key"]]
        else:
            raise ValueError(f"unsupported env source {source}")
    env.update({k: v for k, v in overrides.items() if k in env})
    return env


def local_paths(value: str, paths: dict[str, Path]) -> str:
    """Container paths (whole path prefixes) replaced by their stand-ins on this machine, in
    one pass: a stand-in under /tmp is not mapped again by the rule for /tmp."""
    alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    pattern = rf"(?<![\w/.-])({alternatives})(?=/|$|[^\w.-])"
    return re.sub(pattern, lambda m: str(paths[m.group(1)]), value)


def cluster_params(project: str):
    """Tiny params on the cluster store, reading exactly the manifests' feature_store.yaml."""
    from tests.conftest import tiny_params

    return tiny_params(
        features__store="cluster", features__cluster_config=str(FEAST_YAML), features__project=project
    )


def secret_refs(c: Obj) -> dict[str, tuple[str, str]]:
    """env name -> (secret, key) for every Secret-backed variable."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


# --------------------------------------------------------------------------- offline: the manifests


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_and_cronjob_mount_the_configmap_generated_from_the_yaml(rendered, overlay):
    """One file: both pods mount the ConfigMap made from feature_store.yaml, read-only, and
    point Encore (ENCORE_FEAST_CONFIG) and the feast CLI (FEAST_FS_YAML_FILE_PATH) at it."""
    objects = rendered[overlay]
    # A stable name: the pipeline's features task mounts it by name (no kustomize hash).
    assert generated_config(objects)["metadata"]["name"] == "feast-feature-store"
    for kind, name in (SERVER, CRONJOB):
        mount = config_mount(objects, kind, name)
        assert mount.get("readOnly") is True and "subPath" not in mount, (kind, mount)
        path = f"{mount['mountPath']}/feature_store.yaml"
        env = {e["name"]: e.get("value") for e in container(objects, kind, name)["env"]}
        assert env["ENCORE_FEAST_CONFIG"] == path, kind
        assert env["FEAST_FS_YAML_FILE_PATH"] == path, kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_of_the_yaml_is_set_and_credentials_come_from_secrets(rendered, overlay):
    objects = rendered[overlay]
    needed = referenced_vars(FEAST_YAML.read_text())
    assert needed == {
        "FEAST_REGISTRY_USER",
        "FEAST_REGISTRY_PASSWORD",
        "FEAST_REGISTRY_HOST",
        "FEAST_REGISTRY_PORT",
        "FEAST_REGISTRY_DB",
        "REDIS_CONNECTION",
    }
    for kind, name in (SERVER, CRONJOB):
        c = container(objects, kind, name)
        names = [e["name"] for e in c["env"]]
        assert len(names) == len(set(names)), f"{kind}: duplicate env"
        assert needed <= set(names), f"{kind}: {needed - set(names)} unset"
        assert set(secret_refs(c)) == CREDENTIALS, kind
        # Everything that is not a credential is in a ConfigMap or a literal path.
        for e in c["env"]:
            if e["name"] not in CREDENTIALS:
                assert "secretKeyRef" not in e.get("valueFrom", {}), e


def test_the_yaml_is_the_one_params_points_at_and_serves_the_same_project():
    """params.yaml features.cluster_config is this file; the feast CLI (server, CronJob) uses
    the file's project, Encore uses params' features.project: they must be the same."""
    params = load_params(REPO / "params.yaml")
    assert (REPO / params.features.cluster_config).resolve() == FEAST_YAML.resolve()
    raw = yaml.safe_load(FEAST_YAML.read_text())
    assert raw["project"] == params.features.project
    assert raw["registry"]["registry_type"] == "sql"
    # SQLAlchemy 2.1 (and Feast) map a bare postgresql:// to psycopg 3; the image has psycopg2.
    assert raw["registry"]["path"].startswith("postgresql+psycopg2://")
    assert raw["online_store"]["type"] == "redis" and raw["offline_store"]["type"] == "duckdb"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_server_and_cronjob_run_alike(rendered, overlay, cluster):
    """Same image (= params.yaml CPU image), env, mounts, identity and security context: the
    CronJob materialises into exactly what the server reads."""
    objects = rendered[overlay]
    server, job = container(objects, *SERVER), container(objects, *CRONJOB)
    for key in ("image", "env", "volumeMounts", "securityContext", "workingDir"):
        assert server[key] == job[key], key
    assert server["image"] == f"{cluster.image_registry}/encore-cpu:{cluster.image_tag}"
    s_pod, j_pod = pod_spec(objects, *SERVER), pod_spec(objects, *CRONJOB)
    for key in ("serviceAccountName", "automountServiceAccountToken", "securityContext"):
        assert s_pod[key] == j_pod[key], key
    assert s_pod["automountServiceAccountToken"] is False
    assert s_pod["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_are_empty_dirs(rendered, overlay):
    """Read-only root filesystem: the pods write only to emptyDirs (/tmp, $HOME)."""
    objects = rendered[overlay]
    for kind, name in (SERVER, CRONJOB):
        spec = pod_spec(objects, kind, name)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for mount in container(objects, kind, name)["volumeMounts"]:
            assert "emptyDir" in volumes[mount["name"]] or mount.get("readOnly") is True, (kind, mount)
        mounts = container(objects, kind, name)["volumeMounts"]
        writable = {m["mountPath"] for m in mounts if not m.get("readOnly")}
        assert writable == {"/tmp", "/home/encore"}, kind


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_feature_server_probes_and_service(rendered, overlay):
    objects = rendered[overlay]
    c = container(objects, *SERVER)
    assert c["command"][0] == "feast" and c["command"][-1] == "serve"
    assert "--host=0.0.0.0" in c["args"] and "--port=6566" in c["args"]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert port == 6566
    for probe in ("startupProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert "livenessProbe" in c
    service = one(objects, "Service", "feast-feature-server")["spec"]
    assert service["ports"] == [{"name": "http", "port": 6566, "targetPort": "http", "protocol": "TCP"}]
    template_labels = one(objects, *SERVER)["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= template_labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_materialisation_cronjob_runs_daily_without_overlap(rendered, overlay):
    cronjob = one(rendered[overlay], *CRONJOB)["spec"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    minute, hour, dom, month, dow = cronjob["schedule"].split()
    assert (dom, month, dow) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()
    assert cronjob["timeZone"] == "Etc/UTC"
    assert cronjob["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    c = container(rendered[overlay], *CRONJOB)
    script = k8s_expand(c["args"][0], {})
    assert c["command"] == ["/bin/sh", "-c"]
    assert script.startswith("exec feast ")
    assert 'materialize-incremental "$(date -u +%Y-%m-%dT%H:%M:%S)"' in script


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_feast_network_flows(rendered, overlay):
    """Pipeline pods -> feature server (6566); Feast pods and pipeline pods -> PostgreSQL and
    Redis; nothing else is opened for Feast."""
    policies = {p["metadata"]["name"]: p["spec"] for p in find(rendered[overlay], "NetworkPolicy")}
    server_labels = one(rendered[overlay], *SERVER)["spec"]["template"]["metadata"]["labels"]
    job = one(rendered[overlay], *CRONJOB)["spec"]["jobTemplate"]["spec"]
    job_labels = job["template"]["metadata"]["labels"]

    ingress = policies["feast-feature-server-ingress"]
    assert ingress["podSelector"]["matchLabels"].items() <= server_labels.items()
    rule = ingress["ingress"][0]
    assert {"key": "workflows.argoproj.io/workflow", "operator": "Exists"} in rule["from"][0]["podSelector"][
        "matchExpressions"
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6566}]

    egress = policies["feast-egress"]
    selector = egress["podSelector"]["matchLabels"]
    assert selector.items() <= server_labels.items() and selector.items() <= job_labels.items()
    assert {p["port"] for r in egress["egress"] for p in r["ports"]} == {5432, 6379}

    pipeline = policies["pipeline-feast-egress"]
    to_server = pipeline["egress"][0]
    assert to_server["to"][0]["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert to_server["ports"] == [{"protocol": "TCP", "port": 6566}]
    assert {p["port"] for p in pipeline["egress"][1]["ports"]} == {5432, 6379}


def test_secret_examples_list_exactly_the_referenced_keys(rendered):
    """One example file per Secret the Feast pods read, keys only, no values."""
    referenced: dict[str, set[str]] = {}
    for kind, name in (SERVER, CRONJOB):
        for secret, key in secret_refs(container(rendered["prod"], kind, name)).values():
            referenced.setdefault(secret, set()).add(key)
    assert set(referenced) == set(SECRET_EXAMPLES)
    for secret, path in SECRET_EXAMPLES.items():
        lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
        example = dict(ln.split("=", 1) for ln in lines)
        assert all(v == "" for v in example.values()), f"{path.name} must not carry values"
        assert set(example) == referenced[secret], secret


# --------------------------------------------------------------------------- integration: real backends


@pytest.fixture(scope="module")
def registry_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for the SQL registry, dropped afterwards."""
    require(REDIS_HOST, REDIS_PORT, "Redis")
    with scratch_database("encore_feast") as name:
        yield name


@pytest.fixture(scope="module")
def backend_env(registry_database) -> Iterator[dict[str, str]]:
    """What the pods get from feast-config and the Secrets, for this machine's services."""
    env = {
        "FEAST_REGISTRY_USER": PG_USER,
        "FEAST_REGISTRY_PASSWORD": "",  # trust authentication locally
        "FEAST_REGISTRY_HOST": PG_HOST,
        "FEAST_REGISTRY_PORT": str(PG_PORT),
        "FEAST_REGISTRY_DB": registry_database,
        "REDIS_CONNECTION": f"{REDIS_HOST}:{REDIS_PORT}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("ENCORE_FEAST_CONFIG", raising=False)  # the params' path, not a stray one
        yield env


@pytest.fixture(scope="module")
def cluster_features(backend_env, registry_database, tiny_raw, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The features stage on the cluster configuration; Redis keys removed afterwards."""
    from components.features.core import run
    from components.featurestore.store import open_store, repo_config

    project = f"encore_cluster_{uuid.uuid4().hex[:8]}"
    params = cluster_params(project)
    out = tmp_path_factory.mktemp("cluster_features") / "features"
    try:
        metrics = run(params, tiny_raw, out)
        store = open_store(repo_config(params.features, out / "feast"))
        yield SimpleNamespace(
            store=store,
            out=out,
            params=params,
            project=project,
            metrics=metrics,
            database=registry_database,
            env=backend_env,
        )
    finally:
        # A new store reads the registry as the stage left it (also after a failure) and
        # deletes this project's keys from Redis; the database is dropped by its fixture.
        open_store(repo_config(params.features, out / "feast")).teardown()


@pytest.mark.integration
def test_the_stage_reads_exactly_the_manifest_yaml(cluster_features):
    """The configuration the stage ran with is the mounted file, variables expanded."""
    config = cluster_features.store.config
    assert config.project == cluster_features.project
    assert config.registry.registry_type == "sql"
    assert config.registry.path == (
        f"postgresql+psycopg2://{PG_USER}:@{PG_HOST}:{PG_PORT}/{cluster_features.database}"
    )
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == f"{REDIS_HOST}:{REDIS_PORT}"
    assert config.offline_store.type == "duckdb"


@pytest.mark.integration
def test_the_registry_is_in_postgres(cluster_features):
    import psycopg2

    with psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=cluster_features.database) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            tables = {row[0] for row in cur.fetchall()}
            assert {"projects", "entities", "data_sources", "feature_views", "feature_services"} <= tables
            project = (cluster_features.project,)
            cur.execute("SELECT feature_view_name FROM feature_views WHERE project_id = %s", project)
            views = {row[0] for row in cur.fetchall()}
            cur.execute("SELECT feature_service_name FROM feature_services WHERE project_id = %s", project)
            services = {row[0] for row in cur.fetchall()}
    expected_views = {"user_activity", "track_stats", "user_artist", "user_history"}
    assert views == expected_views and services == {"reward_model", "policy"}

    # A new store (another pod, another process) reads the same from the database.
    from components.featurestore.store import open_store, repo_config

    fresh = open_store(repo_config(cluster_features.params.features, cluster_features.out / "feast"))
    assert {v.name for v in fresh.list_feature_views()} == expected_views
    assert {s.name for s in fresh.list_feature_services()} == {"reward_model", "policy"}
    # The stage materialised every view up to the end of the log window.
    activity = pl.read_parquet(cluster_features.out / "sources" / "user_activity.parquet")
    end = activity["event_timestamp"].max()
    for view in fresh.list_feature_views():
        assert view.materialization_intervals, view.name
        assert max(i[1] for i in view.materialization_intervals) >= end, view.name


@pytest.mark.integration
def test_online_values_from_redis_equal_the_latest_offline_values(cluster_features):
    from components.featurestore.store import online

    store = cluster_features.store
    assert_online_equals_latest_offline(store, cluster_features.out)
    end = pl.read_parquet(cluster_features.out / "sources" / "user_activity.parquet")["event_timestamp"].max()
    unknown = online(store, pl.DataFrame({"user_id": [10**9]}), "policy", now=end)
    assert unknown["u_streams_7d"].to_list() == [None]


@pytest.mark.integration
def test_the_training_frame_equals_the_embedded_stores(cluster_features, tiny_features):
    """Same sources, same DuckDB offline store: the production backends change where the
    registry and online values live, not the point-in-time training frame."""
    from components.featurestore.definitions import TRAIN_FRAME

    frame = pl.read_parquet(cluster_features.out / TRAIN_FRAME)
    assert frame.height == cluster_features.metrics["features/train_frame_rows"] > 0
    assert frame.equals(pl.read_parquet(tiny_features / TRAIN_FRAME))


# ------------------------------------------------------------- the manifests' command lines, on loopback


@pytest.fixture
def pod_sandbox(rendered, cluster_features, tmp_path) -> SimpleNamespace:
    """Stand-ins for what a Feast pod sees: the generated ConfigMap's file (project set to the
    test's, as Encore sets it from params), the image's /opt/encore, emptyDirs for /tmp and $HOME."""
    objects = rendered["prod"]
    mount = config_mount(objects, *SERVER)
    config_dir = tmp_path / "etc-encore-feast"
    config_dir.mkdir()
    text = generated_config(objects)["data"]["feature_store.yaml"]
    text, n = re.subn(r"^project: encore$", f"project: {cluster_features.project}", text, flags=re.MULTILINE)
    assert n == 1
    (config_dir / "feature_store.yaml").write_text(text)
    scratch, home = tmp_path / "tmp", tmp_path / "home"
    scratch.mkdir()
    home.mkdir()
    paths = {mount["mountPath"]: config_dir, "/opt/encore": REPO, "/home/encore": home, "/tmp": scratch}
    return SimpleNamespace(objects=objects, paths=paths, home=home, scratch=scratch)


def _pod_process(
    sandbox: SimpleNamespace, kind: str, name: str, cluster_features: SimpleNamespace
) -> tuple[list[str], dict[str, str], Path]:
    """(argv, env, cwd) of a Feast container as Kubernetes would start it here."""
    c = container(sandbox.objects, kind, name)
    local = cluster_features.env
    env = container_env(
        sandbox.objects,
        c,
        overrides={
            "FEAST_REGISTRY_HOST": local["FEAST_REGISTRY_HOST"],
            "FEAST_REGISTRY_PORT": local["FEAST_REGISTRY_PORT"],
            "FEAST_REGISTRY_DB": local["FEAST_REGISTRY_DB"],
            "PGSSLMODE": "disable",  # the local PostgreSQL has no TLS; the manifests require it
        },
        secrets={
            "encore-feast-registry": {"username": PG_USER, "password": ""},
            "encore-redis": {"connection-string": local["REDIS_CONNECTION"]},
        },
    )
    argv = [local_paths(k8s_expand(part, env), sandbox.paths) for part in c["command"] + c.get("args", [])]
    env = {k: local_paths(v, sandbox.paths) for k, v in env.items()}
    cwd = Path(local_paths(c["workingDir"], sandbox.paths))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FEAST_", "ENCORE_", "REDIS_"))}
    # The image's PATH starts with its venv: here, this interpreter's.
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return argv, {**base, **OFFLINE_ENV, **env, "HOME": str(sandbox.home)}, cwd


@pytest.fixture
def feature_server(pod_sandbox, cluster_features, tmp_path) -> Iterator[str]:
    """The rendered Deployment's `feast serve` on a loopback port; yields its URL."""
    argv, env, cwd = _pod_process(pod_sandbox, *SERVER, cluster_features)
    assert argv[:2] == ["feast", f"--chdir={REPO / 'feature_repo'}"] and "serve" in argv, argv
    port = free_port()
    with serving("feast serve", listen_locally(argv, port), env, cwd, port, tmp_path / "server.log") as url:
        yield url


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.integration
def test_the_feature_server_of_the_manifest_serves_the_materialised_values(feature_server, cluster_features):
    """`feast serve` exactly as deployed (config from FEAST_FS_YAML_FILE_PATH, registry in
    PostgreSQL, values in Redis) answers /health and returns the latest offline values."""
    activity = pl.read_parquet(cluster_features.out / "sources" / "user_activity.parquet")
    end = activity["event_timestamp"].max()
    latest = (
        latest_per_entity(activity, ["user_id"])
        .filter(pl.col("event_timestamp") == end)
        .sort("user_id")
        .head(20)
    )
    reply = _post(
        f"{feature_server}/get-online-features",
        {"feature_service": "policy", "entities": {"user_id": latest["user_id"].to_list()}},
    )
    columns = dict(zip(reply["metadata"]["feature_names"], reply["results"], strict=True))
    for col in ("u_streams_7d", "u_active_days_28d", "u_tenure_days"):
        assert columns[col]["values"] == latest[col].to_list(), col
        assert set(columns[col]["statuses"]) == {"PRESENT"}, col


@pytest.mark.integration
def test_the_cronjob_command_materialises_incrementally(pod_sandbox, cluster_features):
    """The CronJob's shell line, `$$` unescaped as the kubelet does, run against the same
    registry: it continues where the stage stopped and records the run up to now."""
    argv, env, cwd = _pod_process(pod_sandbox, *CRONJOB, cluster_features)
    assert argv[:2] == ["/bin/sh", "-c"] and "$(date -u" in argv[2], argv
    before = datetime.now(timezone.utc).replace(microsecond=0)
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    from components.featurestore.store import open_store, repo_config

    fresh = open_store(repo_config(cluster_features.params.features, cluster_features.out / "feast"))
    for view in fresh.list_feature_views():
        assert max(i[1] for i in view.materialization_intervals) >= before, view.name
    # Nothing was written outside the pod's writable paths (read-only root filesystem).
    assert not list((REPO / "feature_repo").glob("*.db")), "wrote into the repository folder"
