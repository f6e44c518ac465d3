"""Fixtures for the deployment tests: each overlay rendered once per session."""

from __future__ import annotations

import pytest

from components.params import ClusterParams, load_params
from tests.deploy.manifests import K8S, OVERLAYS, REPO, Obj, kubectl, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    """overlay name -> rendered objects. Skips (naming the reason) only without kubectl."""
    if kubectl() is None:
        pytest.skip(
            "kubectl is not on PATH: install the kubectl client (it bundles kustomize) to render k8s/"
        )
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def cluster() -> ClusterParams:
    """params.yaml ``cluster:``: what the compiled pipeline assumes about the cluster."""
    return load_params(REPO / "params.yaml").cluster
