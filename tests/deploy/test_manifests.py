"""The kustomize overlays render, validate against the Kubernetes schemas, and keep the
promises docs/deployment.md makes: restricted Pod Security, resources on every container,
default-deny networking, secrets referenced and never shipped, one image with the pipeline."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.deploy.manifests import (
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    containers,
    enforced_level,
    find,
    namespace_of,
    one,
    pod_specs,
    restricted_violations,
)

MLFLOW_SECRET = "mlflow-credentials"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(rendered, overlay):
    kinds = {o["kind"] for o in rendered[overlay]}
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "ResourceQuota", "LimitRange"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(rendered, overlay):
    """Strict validation (unknown fields are errors) with the schemas of the pinned version."""
    utils = pytest.importorskip(
        "kubernetes_validate.utils", reason="kubernetes-validate missing: pip install -e '.[deploy]'"
    )
    errors = []
    for obj in rendered[overlay]:
        try:
            utils.validate(obj, KUBERNETES_VERSION, strict=True)
        except utils.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_namespaced_lands_in_the_pipeline_namespace(rendered, overlay, cluster):
    """Apart from the device plugin's own namespace, every namespaced object is in
    params.yaml cluster.namespace - the namespace the compiled pipeline runs in."""
    cluster_scoped = {"Namespace", "PriorityClass"}
    for obj in rendered[overlay]:
        if obj["kind"] in cluster_scoped:
            continue
        assert namespace_of(obj) in (cluster.namespace, "nvidia-device-plugin"), (
            f"{obj['kind']}/{obj['metadata']['name']}"
        )
    assert find(rendered[overlay], "Namespace", cluster.namespace)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespaces_declare_pod_security_levels(rendered, overlay, cluster):
    for ns in find(rendered[overlay], "Namespace"):
        labels = ns["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert f"pod-security.kubernetes.io/{mode}" in labels, (ns["metadata"]["name"], mode)
    assert enforced_level(rendered[overlay], cluster.namespace) == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_in_restricted_namespaces_pass_the_restricted_profile(rendered, overlay):
    objects = rendered[overlay]
    checked = 0
    for obj, spec in pod_specs(objects):
        if enforced_level(objects, namespace_of(obj)) != "restricted":
            continue
        checked += 1
        assert restricted_violations(spec) == [], f"{obj['kind']}/{obj['metadata']['name']}"
    assert checked, "no workload found in a restricted namespace"


def test_the_restricted_check_catches_a_root_pod():
    bad = {
        "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
    }
    problems = " ".join(restricted_violations(bad))
    for word in (
        "hostPath",
        "runAsNonRoot",
        "runAsUser 0",
        "seccompProfile",
        "drop ALL",
        "allowPrivilegeEscalation",
    ):
        assert word in problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_a_hardened_context(rendered, overlay):
    for obj, spec in pod_specs(rendered[overlay]):
        for c in containers(spec):
            where = f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
            res = c.get("resources", {})
            assert {"cpu", "memory"} <= set(res.get("requests", {})), f"{where}: requests"
            assert {"cpu", "memory"} <= set(res.get("limits", {})), f"{where}: limits"
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_are_empty_dirs(rendered, overlay):
    """readOnlyRootFilesystem everywhere; MLflow writes only to emptyDirs."""
    spec = one(rendered[overlay], "Deployment", "mlflow")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in spec["containers"][0]["volumeMounts"]:
        assert "emptyDir" in volumes[mount["name"]], mount


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_default_deny_with_explicit_allows(rendered, overlay):
    policies = {p["metadata"]["name"]: p["spec"] for p in find(rendered[overlay], "NetworkPolicy")}
    deny = policies["default-deny-all"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    dns_ports = {
        (p["protocol"], p["port"]) for rule in policies["allow-dns"]["egress"] for p in rule["ports"]
    }
    assert dns_ports == {("UDP", 53), ("TCP", 53)}
    mlflow_in = policies["mlflow-ingress"]["ingress"][0]
    assert {"key": "workflows.argoproj.io/workflow", "operator": "Exists"} in mlflow_in["from"][0][
        "podSelector"
    ]["matchExpressions"]
    assert mlflow_in["ports"] == [{"protocol": "TCP", "port": 5000}]
    mlflow_out = {p["port"] for rule in policies["mlflow-egress"]["egress"] for p in rule["ports"]}
    assert {5432, 443} <= mlflow_out
    to_mlflow = policies["pipeline-egress"]["egress"][0]
    assert to_mlflow["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "mlflow"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_shipped(rendered, overlay):
    objects = rendered[overlay]
    assert not find(objects, "Secret"), "a Secret object would put credentials in git or in the render"
    container = one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(refs) == {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert {r["name"] for r in refs.values()} == {MLFLOW_SECRET}
    assert all("value" not in e for e in container["env"]), (
        "literal env values: put settings in mlflow-config"
    )
    for value in one(objects, "ConfigMap", "mlflow-config")["data"].values():
        assert "://" not in value or urlsplit(value).password is None, f"password inlined in {value}"


def test_secret_example_lists_exactly_the_referenced_keys(rendered):
    """k8s/secret.example.env documents the keys the Deployment reads, with no values."""
    lines = [
        ln for ln in (K8S / "secret.example.env").read_text().splitlines() if ln and not ln.startswith("#")
    ]
    example = dict(ln.split("=", 1) for ln in lines)
    assert all(v == "" for v in example.values()), "the example must not carry values"
    container = one(rendered["prod"], "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(example) == keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_runs_the_pipelines_cpu_image(rendered, overlay, cluster):
    """One image for MLflow and the CPU tasks: params.yaml cluster.image_registry/image_tag,
    the same reference pipelines/images.py compiles into the pipeline."""
    container = one(rendered[overlay], "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{cluster.image_registry}/encore-cpu:{cluster.image_tag}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_image_is_pinned(rendered, overlay):
    for obj, spec in pod_specs(rendered[overlay]):
        for c in containers(spec):
            image = c["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
            assert tag and tag != "latest", f"{obj['metadata']['name']}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_pulls_a_tag_again(rendered, overlay):
    """`Always` re-resolves a tag at every pod start, so one re-pushed tag would run two images
    side by side. A tag is pulled once per node (IfNotPresent); only a digest may be re-checked."""
    for obj, spec in pod_specs(rendered[overlay]):
        for c in containers(spec):
            if c.get("imagePullPolicy") == "Always":
                assert "@sha256:" in c["image"], f"{obj['metadata']['name']}/{c['name']}: {c['image']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pipeline_runner_identity(rendered, overlay, cluster):
    """submit.py runs pipelines as encore-pipeline-runner, bound to a Role in the namespace;
    it can read no Secret but KFP's artifact-store credentials."""
    objects = rendered[overlay]
    one(objects, "ServiceAccount", "encore-pipeline-runner")
    binding = one(objects, "RoleBinding", "encore-pipeline-runner")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "encore-pipeline-runner", "namespace": cluster.namespace}
    ]
    rules = one(objects, "Role", binding["roleRef"]["name"])["rules"]
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        if "secrets" in rule["resources"]:
            assert rule.get("resourceNames") == ["mlpipeline-minio-artifact"], rule


def test_device_plugin_only_in_prod(rendered):
    assert find(rendered["prod"], "DaemonSet", "nvidia-device-plugin")
    assert not find(rendered["dev"], "DaemonSet", "nvidia-device-plugin")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_feast_is_rendered(rendered, overlay):
    """k8s/base/feast/ is part of the base (its wiring: tests/deploy/test_feast_cluster.py)."""
    objects = rendered[overlay]
    one(objects, "Deployment", "feast-feature-server")
    one(objects, "Service", "feast-feature-server")
    one(objects, "CronJob", "feast-materialize")
    one(objects, "ConfigMap", "feast-feature-store")
