"""The policy service's manifests (k8s/base/serve): what they promise docs/serving.md.

The generic checks (schemas, restricted Pod Security, resources, read-only root, checkov)
cover the new workload through test_manifests.py and test_security_scan.py; these check its
wiring: probes, autoscaling, disruption budget, selectors, the params it reads, the Feast and
MLflow it reaches, and the network flows that let it."""

from __future__ import annotations

import pytest
import yaml

from components.params import load_params
from components.serve import SECTIONS
from tests.deploy.manifests import K8S, OVERLAYS, REPO, one

NAME = "encore-serve"
POD_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "policy-server"}
# where the cluster's params differ from params.yaml, and why (k8s/base/serve/params.yaml)
CLUSTER_CHANGES = {
    ("tracking", "uri"): "http://mlflow.encore.svc.cluster.local:5000",
    ("features", "store"): "cluster",
}


def _pod(objects) -> dict:
    return one(objects, "Deployment", NAME)["spec"]["template"]


def _container(objects) -> dict:
    return _pod(objects)["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_service_hpa_and_pdb_fit_together(rendered, overlay, cluster):
    objects = rendered[overlay]
    pod = _pod(objects)
    assert POD_LABELS.items() <= pod["metadata"]["labels"].items()
    assert one(objects, "Service", NAME)["spec"]["selector"] == POD_LABELS
    assert one(objects, "PodDisruptionBudget", NAME)["spec"]["selector"]["matchLabels"] == POD_LABELS
    hpa = one(objects, "HorizontalPodAutoscaler", NAME)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    c = _container(objects)
    assert c["image"] == f"{cluster.image_registry}/encore-cpu:{cluster.image_tag}"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["ports"][0]["containerPort"] == 8080 and "--port=8080" in c["args"]
    grace = _pod(objects)["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30, (
        "uvicorn's graceful shutdown (30 s) and the last log flush must fit in the grace period"
    )


def test_prod_runs_more_replicas_than_dev(rendered):
    def hpa(overlay):
        return one(rendered[overlay], "HorizontalPodAutoscaler", NAME)["spec"]

    assert hpa("prod")["minReplicas"] >= 3 > hpa("dev")["minReplicas"]
    assert _pod(rendered["prod"])["spec"]["topologySpreadConstraints"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_service_reads_its_mounted_params_and_the_cluster_feast_config(rendered, overlay, tmp_path):
    objects = rendered[overlay]
    c = _container(objects)
    assert c["command"] == ["python", "-m", "components.serve"]
    volumes = {v["name"]: v for v in _pod(objects)["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    params_map = volumes[mounts["/etc/encore/serve"]]["configMap"]["name"]
    assert "--params=/etc/encore/serve/params.yaml" in c["args"]
    text = one(objects, "ConfigMap", params_map)["data"]["params.yaml"]
    (tmp_path / "params.yaml").write_text(text)
    loaded = load_params(tmp_path / "params.yaml", only=SECTIONS)  # what the pod's CLI does
    assert loaded.features.store == "cluster"
    assert volumes[mounts["/etc/encore/feast"]]["configMap"]["name"] == "feast-feature-store"
    env = {e["name"]: e for e in c["env"]}
    assert env["ENCORE_FEAST_CONFIG"]["value"] == "/etc/encore/feast/feature_store.yaml"
    feast = one(objects, "Deployment", "feast-feature-server")["spec"]["template"]["spec"]["containers"][0]
    wanted = {e["name"]: e for e in feast["env"] if e["name"] != "FEAST_FS_YAML_FILE_PATH"}
    assert {k: env[k] for k in wanted} == wanted, "the same Feast variables, from the same sources"
    online = yaml.safe_load(one(objects, "ConfigMap", "feast-feature-store")["data"]["feature_store.yaml"])
    assert online["online_store"]["type"] == "redis"
    logs = volumes[mounts["/var/lib/encore/served"]]
    assert logs["persistentVolumeClaim"]["claimName"] == "encore-served-logs"
    one(objects, "PersistentVolumeClaim", "encore-served-logs")


def test_cluster_params_equal_params_yaml_but_for_the_argued_changes():
    repo = yaml.safe_load((REPO / "params.yaml").read_text())
    served = yaml.safe_load((K8S / "base" / "serve" / "params.yaml").read_text())
    assert set(served) == {"tracking", *SECTIONS}
    for section, values in served.items():
        for key, value in values.items():
            expected = CLUSTER_CHANGES.get((section, key), repo[section][key])
            assert value == expected, f"{section}.{key}: {value!r} != {expected!r}"
        assert set(values) == set(repo[section]), section


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_lets_the_service_reach_what_it_reads_and_clients_reach_it(rendered, overlay):
    policies = {p["metadata"]["name"]: p["spec"] for p in rendered[overlay] if p["kind"] == "NetworkPolicy"}
    labels = _pod(rendered[overlay])["metadata"]["labels"]
    out = policies["encore-serve-egress"]
    assert out["podSelector"]["matchLabels"].items() <= labels.items()
    ports = {p["port"] for rule in out["egress"] for p in rule["ports"]}
    assert {5000, 5432, 6379} <= ports
    admitted = [
        f["podSelector"]["matchLabels"]
        for f in policies["mlflow-ingress"]["ingress"][0]["from"]
        if "matchLabels" in f.get("podSelector", {})
    ]
    assert any(m.items() <= labels.items() for m in admitted), "MLflow must admit the service's pods"
    inbound = policies["encore-serve-ingress"]["ingress"][0]
    assert inbound["ports"] == [{"protocol": "TCP", "port": 8080}]
