"""Container images the compiled pipeline runs in: one CPU image, one GPU image.

One parameter picks both: ``ENCORE_IMAGE_REGISTRY`` and ``ENCORE_IMAGE_TAG`` at compile
time (defaults below; never ``latest``). The committed spec uses the defaults.
"""

from __future__ import annotations

import os

from components import __version__

REGISTRY = os.environ.get("ENCORE_IMAGE_REGISTRY", "ghcr.io/encore-ml")
TAG = os.environ.get("ENCORE_IMAGE_TAG", __version__)
if TAG == "latest":
    raise ValueError("ENCORE_IMAGE_TAG=latest is not allowed: pin an immutable tag")

CPU_IMAGE = f"{REGISTRY}/encore-cpu:{TAG}"
GPU_IMAGE = f"{REGISTRY}/encore-gpu:{TAG}"
