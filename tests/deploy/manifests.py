"""Offline helpers for the deployment tests: render overlays, walk pod specs, check Pod
Security "restricted", parse resource quantities.

Kept free of pytest so the same functions can be reused from a script or a notebook.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"  # schemas pinned to the kubectl client's minor (see tests)

Obj = dict[str, Any]

WORKLOAD_POD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(overlay_dir: Path) -> list[Obj]:
    """``kubectl kustomize`` one overlay into a list of objects (raises with kustomize's
    message when it does not render)."""
    proc = subprocess.run(
        [kubectl() or "kubectl", "kustomize", str(overlay_dir)], check=False, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay_dir} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(owning object, pod spec) for every workload that creates pods."""
    for obj in objects:
        path = WORKLOAD_POD_PATHS.get(obj["kind"])
        if path is None:
            continue
        node: Any = obj
        for key in path:
            node = node[key]
        yield obj, node


def containers(pod_spec: Obj) -> list[Obj]:
    return [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]


def namespace_of(obj: Obj) -> str | None:
    return obj["metadata"].get("namespace")


def enforced_level(objects: list[Obj], namespace: str | None) -> str:
    """The Pod Security level a namespace in the same render enforces ("privileged" when the
    namespace is not ours or carries no label: that is the Kubernetes default)."""
    for ns in find(objects, "Namespace", namespace):
        return ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce", "privileged")
    return "privileged"


def restricted_violations(pod_spec: Obj) -> list[str]:
    """What Pod Security Admission's "restricted" level would reject in this pod spec.

    The rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/
    (baseline + restricted) that a manifest can break; enough to fail here, before the API
    server does.
    """
    problems: list[str] = []
    pod_sc = pod_spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"pod sets {flag}")
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for vol in pod_spec.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {vol['name']}: type {sorted(kinds - allowed_volumes)} not allowed")
    pod_seccomp = pod_sc.get("seccompProfile", {}).get("type")
    for c in containers(pod_spec):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        if sc.get("seccompProfile", {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


_SUFFIX = {
    "m": Decimal("0.001"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}


def quantity(value: str | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "32G", "64Gi", 8) as a number."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a resource quantity: {value!r}")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
