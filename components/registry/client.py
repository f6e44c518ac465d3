"""Thin helpers over MLflow's model registry (aliases, lineage tags, finding versions).

The one place Encore talks to the registry: ``evaluate`` asks it for the champion to
compare against, ``register`` records versions and moves aliases.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

FINGERPRINT_TAG = "encore.fingerprint"


def connect(uri: str):
    """An MlflowClient on ``uri`` (tracking and registry), also made the process default."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def version_by_alias(c, name: str, alias: str):
    """The version an alias points at, or None (no model or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_with_fingerprint(c, name: str, fingerprint: str):
    from mlflow.exceptions import MlflowException

    try:
        found = c.search_model_versions(f"name='{name}' and tags.`{FINGERPRINT_TAG}`='{fingerprint}'")
    except MlflowException:
        return None
    return found[0] if found else None


def downloaded_policy(name: str, alias: str) -> Path | None:
    """Local copy of the policy folder behind ``models:/name@alias`` (None if there is none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@{alias}"))
    except MlflowException:
        return None
    found = sorted(root.rglob("item_vocab.json"))
    return found[0].parent if found else None


def fingerprint(*folders: Path, extra: str = "") -> str:
    """Content hash of model weights (+ extra text): equal inputs -> equal fingerprint."""
    h = hashlib.sha256(extra.encode())
    for folder in folders:
        for f in sorted(Path(folder).rglob("*.safetensors")):
            h.update(f.read_bytes())
    return h.hexdigest()[:20]


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_data_hash(repo: Path) -> str:
    """The md5 DVC recorded for the raw logs in dvc.lock ('unknown' outside a DVC workspace)."""
    import yaml

    lock = Path(repo) / "dvc.lock"
    if not lock.exists():
        return "unknown"
    for out in yaml.safe_load(lock.read_text()).get("stages", {}).get("simulate", {}).get("outs", []):
        if out.get("path") == "data/raw":
            return str(out.get("md5", "unknown"))
    return "unknown"
