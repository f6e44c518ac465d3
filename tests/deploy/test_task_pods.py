"""The pipeline's task pods and the images they run agree: the user the tasks run as is the
images' numeric USER, every path the images write to is a scratch volume of the task, and a
release compile names the images by digest.

(The compiled spec's own properties - security context, scratch mounts, pull policy on every
task - are checked in tests/pipelines/test_compile.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from pipelines.images import reference
from pipelines.scheduling import RUN_AS, SCRATCH
from tests.deploy.manifests import REPO

DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))
DIGEST = "sha256:" + "ab" * 32


def _runtime_stage(dockerfile) -> str:
    """The Dockerfile from its last FROM on (the image the tasks run)."""
    text = dockerfile.read_text()
    return text[[m.start() for m in re.finditer(r"^FROM ", text, flags=re.MULTILINE)][-1] :]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_tasks_run_as_the_images_user(dockerfile):
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", _runtime_stage(dockerfile), flags=re.MULTILINE)
    assert users == [(str(RUN_AS), str(RUN_AS))], users


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_path_the_image_writes_is_a_task_scratch_volume(dockerfile):
    """HOME (library caches), WORKDIR (relative paths, DuckDB's spill folder) and /tmp are the
    writable paths; each is an emptyDir of every task, so the root filesystem can be read-only."""
    stage = _runtime_stage(dockerfile)
    home = re.search(r"\bHOME=(\S+)", stage).group(1)
    workdir = re.findall(r"^WORKDIR\s+(\S+)", stage, flags=re.MULTILINE)[-1]
    assert {home, workdir, "/tmp"} <= set(SCRATCH.values())


def test_an_image_reference_is_a_pinned_tag_or_a_digest():
    assert reference("encore-cpu", "r.example/x", "0.1.0") == "r.example/x/encore-cpu:0.1.0"
    assert reference("encore-cpu", "r.example/x", "0.1.0", DIGEST) == f"r.example/x/encore-cpu:0.1.0@{DIGEST}"
    with pytest.raises(ValueError, match="latest"):
        reference("encore-cpu", "r.example/x", "latest")
    with pytest.raises(ValueError, match="sha256"):
        reference("encore-cpu", "r.example/x", "0.1.0", "sha256:short")


def test_a_release_compile_names_every_image_by_digest(tmp_path):
    """ENCORE_IMAGE_{CPU,GPU}_DIGEST at compile time: every task's image carries its digest."""
    gpu_digest = "sha256:" + "cd" * 32
    env = {**os.environ, "ENCORE_IMAGE_CPU_DIGEST": DIGEST, "ENCORE_IMAGE_GPU_DIGEST": gpu_digest}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--out-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    spec = next(yaml.safe_load_all((tmp_path / "encore_training.yaml").read_text()))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert {i.rsplit("@", 1)[-1] for i in images} == {DIGEST, gpu_digest}, images
