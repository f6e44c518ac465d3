"""GPU tasks of the compiled pipeline, params.yaml cluster.gpu and k8s/ agree.

The real pipeline has no GPU task yet (they arrive with the reward-model issue): the check
over the committed spec passes trivially on the tasks today and checks them once they
exist. The extraction and comparison are exercised now on a tiny pipeline compiled here
with the same ``on_gpu`` the training stages will use.
"""

# No `from __future__ import annotations`: KFP reads the component's real annotations.
import dataclasses
from pathlib import Path

import pytest
from kfp import compiler, dsl

from components.params import GPUParams
from pipelines.compile import COMPILED_DIR
from pipelines.scheduling import on_cpu, on_gpu
from tests.deploy.placement import Toleration, gpu_tasks, mismatches


@dsl.component(base_image="example.invalid/encore-gpu:0", install_kfp_package=False)
def _train(steps: int) -> int:
    return steps


def compile_tiny(path: Path, gpu: GPUParams) -> Path:
    """A two-task pipeline: one task on_gpu (the training stages' placement), one on_cpu."""

    @dsl.pipeline(name="gpu-placement-probe")
    def probe():
        on_gpu(_train(steps=1), gpu).set_display_name("train")
        on_cpu(_train(steps=2)).set_display_name("cpu")

    compiler.Compiler().compile(probe, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory, cluster) -> Path:
    return compile_tiny(tmp_path_factory.mktemp("gpu") / "probe.yaml", cluster.gpu)


def test_extraction_finds_the_gpu_task_and_its_placement(tiny_spec, cluster):
    gpu = cluster.gpu
    (task,) = gpu_tasks(tiny_spec)  # the CPU task has no accelerator
    assert task.accelerator_type == gpu.accelerator_type
    assert task.accelerator_count == gpu.accelerator_limit
    assert task.node_selector == {gpu.node_selector_key: gpu.node_selector_value}
    assert (
        Toleration(key=gpu.toleration_key, operator="Exists", effect=gpu.toleration_effect)
        in task.tolerations
    )


def test_tiny_gpu_pipeline_matches_the_prod_manifests(tiny_spec, rendered, cluster):
    assert mismatches(gpu_tasks(tiny_spec), cluster.gpu, rendered["prod"], cluster.namespace) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"node_selector_value": "a100"}, "node selector"),
        ({"toleration_key": "example.com/gpu"}, "does not tolerate"),
        ({"accelerator_type": "amd.com/gpu"}, "accelerator"),
        ({"accelerator_limit": 2}, "accelerators"),
    ],
)
def test_a_drifted_pipeline_is_reported(tmp_path, rendered, cluster, change, expected):
    """A task compiled with other GPU settings than params.yaml (and k8s/) is caught."""
    gpu = cluster.gpu.model_copy(update=change)
    spec = compile_tiny(tmp_path / "drift.yaml", gpu)
    problems = mismatches(gpu_tasks(spec), cluster.gpu, rendered["prod"], cluster.namespace)
    assert any(expected in p for p in problems), problems


def test_drifted_manifests_are_reported(rendered, cluster):
    """The other direction: manifests that no longer match params.yaml."""
    other = cluster.gpu.model_copy(
        update={"node_selector_key": "example.com/pool", "toleration_effect": "NoExecute"}
    )
    problems = mismatches([], other, rendered["prod"], cluster.namespace)
    assert any(p.startswith("DaemonSet") and "nodeSelector" in p for p in problems), problems
    assert any(p.startswith("DaemonSet") and "tolerate" in p for p in problems), problems
    assert mismatches([], cluster.gpu, rendered["dev"], cluster.namespace) == [
        "no device plugin DaemonSet in the render"
    ]


def test_the_gpu_quota_must_admit_one_training_task(rendered, cluster):
    bigger = cluster.gpu.model_copy(update={"accelerator_limit": 8})
    problems = mismatches([], bigger, rendered["prod"], cluster.namespace)
    assert any("ResourceQuota encore-gpu" in p for p in problems), problems


def test_a_task_above_the_limitrange_is_reported(tiny_spec, rendered, cluster):
    (task,) = gpu_tasks(tiny_spec)
    greedy = dataclasses.replace(task, cpu_limit="64", memory_limit="512Gi")
    problems = mismatches([greedy], cluster.gpu, rendered["prod"], cluster.namespace)
    assert any("cpu 64 above LimitRange" in p for p in problems) and any(
        "memory 512Gi" in p for p in problems
    ), problems


def test_committed_pipeline_matches_the_manifests(rendered, cluster):
    """The real check: every GPU task of pipelines/compiled/encore_training.yaml (none before
    the reward-model issue) against params.yaml cluster.gpu and the prod overlay."""
    tasks = gpu_tasks(COMPILED_DIR / "encore_training.yaml")
    assert mismatches(tasks, cluster.gpu, rendered["prod"], cluster.namespace) == []
