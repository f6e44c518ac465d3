"""Container images the compiled pipeline runs in: one CPU image, one GPU image.

One parameter picks both: ``cluster.image_registry`` / ``cluster.image_tag`` in
params.yaml (``ENCORE_IMAGE_REGISTRY`` / ``ENCORE_IMAGE_TAG`` override them when a CI job
builds and compiles for another registry). Never ``latest``.

Digests: a release compiles with ``ENCORE_IMAGE_CPU_DIGEST`` / ``ENCORE_IMAGE_GPU_DIGEST``
(``sha256:…``, what ``docker push`` printed) and the tasks then run
``<registry>/encore-cpu:<tag>@sha256:…``, which no re-pushed tag can change. The committed spec
(``pipelines/compiled/``) cannot know a digest before the images are built: it names the tag,
and every task pulls ``IfNotPresent`` (:func:`pipelines.scheduling.hardened`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from components.params import load_params

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def load_cluster():
    """The ``cluster`` section of the repository's params.yaml (read at compile time)."""
    return load_params(Path(__file__).resolve().parents[1] / "params.yaml").cluster


def reference(name: str, registry: str, tag: str, digest: str | None = None) -> str:
    """``registry/name:tag``, or ``registry/name:tag@sha256:…`` when the digest is known.
    Refuses ``latest`` and anything that is not a sha256 digest."""
    if tag == "latest":
        raise ValueError("image tag 'latest' is not allowed: pin an immutable tag")
    if digest and not DIGEST.fullmatch(digest):
        raise ValueError(f"{name}: digest {digest!r} is not of the form sha256:<64 hex digits>")
    return f"{registry}/{name}:{tag}" + (f"@{digest}" if digest else "")


_cluster = load_cluster()
REGISTRY = os.environ.get("ENCORE_IMAGE_REGISTRY", _cluster.image_registry)
TAG = os.environ.get("ENCORE_IMAGE_TAG", _cluster.image_tag)

CPU_IMAGE = reference("encore-cpu", REGISTRY, TAG, os.environ.get("ENCORE_IMAGE_CPU_DIGEST"))
GPU_IMAGE = reference("encore-gpu", REGISTRY, TAG, os.environ.get("ENCORE_IMAGE_GPU_DIGEST"))
