"""Container images the compiled pipeline runs in: one CPU image, one GPU image.

One parameter picks both: ``cluster.image_registry`` / ``cluster.image_tag`` in
params.yaml (``ENCORE_IMAGE_REGISTRY`` / ``ENCORE_IMAGE_TAG`` override them when a CI job
builds and compiles for another registry). Never ``latest``.
"""

from __future__ import annotations

import os
from pathlib import Path

from components.params import load_params


def load_cluster():
    """The ``cluster`` section of the repository's params.yaml (read at compile time)."""
    return load_params(Path(__file__).resolve().parents[1] / "params.yaml").cluster


_cluster = load_cluster()
REGISTRY = os.environ.get("ENCORE_IMAGE_REGISTRY", _cluster.image_registry)
TAG = os.environ.get("ENCORE_IMAGE_TAG", _cluster.image_tag)
if TAG == "latest":
    raise ValueError("ENCORE_IMAGE_TAG=latest is not allowed: pin an immutable tag")

CPU_IMAGE = f"{REGISTRY}/encore-cpu:{TAG}"
GPU_IMAGE = f"{REGISTRY}/encore-gpu:{TAG}"
