"""Thin helpers over MLflow's model registry (aliases, lineage tags, finding versions).

The one place Encore talks to the registry: ``evaluate`` asks it for the champion to
compare against, ``register`` records versions and moves aliases, and DVC's ``champion`` stage
(:mod:`components.registry.snapshot`) writes down who the champion is.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from components.errors import EncoreError

FINGERPRINT_TAG = "encore.fingerprint"


class RegistryError(EncoreError):
    """The model registry did not answer, or answered with an error: nothing may move on it."""


def connect(uri: str):
    """An MlflowClient on ``uri`` (tracking and registry), also made the process default."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _absent(e: Exception) -> bool:
    """MLflow's answer for 'no such model' or 'no such alias' — the only errors that mean 'none yet'."""
    code = getattr(e, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(e))


def _failed(c, what: str, e: Exception) -> RegistryError:
    store = getattr(c, "_registry_uri", None) or "the MLflow registry"
    return RegistryError(f"model registry at {store}: {what} failed ({type(e).__name__}: {e})")


def version_by_alias(c, name: str, alias: str):
    """The version an alias points at; None only when the model or the alias does not exist yet.
    Any other failure (the store unreachable, a broken database) raises :class:`RegistryError`:
    answering 'no champion' then would let a challenger overwrite the real one."""
    try:
        return c.get_model_version_by_alias(name, alias)
    except Exception as e:  # noqa: BLE001 - MLflow raises several types for a dead store
        if _absent(e):
            return None
        raise _failed(c, f"reading {name}@{alias}", e) from e


def version_with_fingerprint(c, name: str, fingerprint: str):
    """The version of ``name`` registered from these exact models, or None."""
    try:
        found = c.search_model_versions(f"name='{name}' and tags.`{FINGERPRINT_TAG}`='{fingerprint}'")
    except Exception as e:  # noqa: BLE001
        if _absent(e):
            return None
        raise _failed(c, f"searching {name} for fingerprint {fingerprint}", e) from e
    return found[0] if found else None


def downloaded_policy(c, name: str, version: str) -> Path:
    """Local copy of the policy folder of ``models:/name/version``."""
    import mlflow

    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    except Exception as e:  # noqa: BLE001
        raise _failed(c, f"downloading {name} version {version}", e) from e
    found = sorted(root.rglob("item_vocab.json"))
    if not found:
        raise RegistryError(f"models:/{name}/{version}: no policy (item_vocab.json) in the registered model")
    return found[0].parent


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
