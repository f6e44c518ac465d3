"""GPU placement: what a compiled KFP spec asks of the cluster, and whether k8s/ provides it.

A training task compiled with ``pipelines.scheduling.on_gpu`` carries three things:
an accelerator request (``deploymentSpec.executors.<e>.container.resources.accelerator``),
a node selector and a toleration (``platforms.kubernetes.deploymentSpec.executors.<e>``).
The cluster side must match all three: the device plugin DaemonSet runs on exactly those
nodes and tolerates exactly that taint (else the GPUs are never advertised there), and a
ResourceQuota admits that many GPUs. Any drift shows up as training pods Pending forever,
so it is checked offline here instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.params import GPUParams
from tests.deploy.manifests import Obj, find, pod_specs, quantity


@dataclass(frozen=True)
class Toleration:
    key: str | None
    operator: str
    effect: str | None
    value: str | None = None

    def tolerates(self, key: str, effect: str) -> bool:
        """Kubernetes' matching rule for a taint ``key[=value]:effect`` (value-less here)."""
        key_ok = self.key in (None, "") and self.operator == "Exists" or self.key == key
        effect_ok = self.effect in (None, "") or self.effect == effect
        value_ok = self.operator == "Exists" or self.value in (None, "")
        return key_ok and effect_ok and value_ok


@dataclass(frozen=True)
class GpuTask:
    """One executor of a compiled pipeline that requests an accelerator."""

    executor: str
    accelerator_type: str
    accelerator_count: int
    node_selector: dict[str, str]
    tolerations: tuple[Toleration, ...]
    cpu_limit: str | None
    memory_limit: str | None


def load_spec(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, kubernetes platform spec) of a compiled KFP YAML (two documents; the
    second is absent when no task uses kfp-kubernetes)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    pipeline = next(d for d in docs if "deploymentSpec" in d)
    platform: dict[str, Any] = next((d for d in docs if "platforms" in d), {})
    kubernetes = platform.get("platforms", {}).get("kubernetes", {})
    return pipeline, kubernetes.get("deploymentSpec", {}).get("executors", {})


def gpu_tasks(path: Path) -> list[GpuTask]:
    """Every executor of the spec with an accelerator, with its placement."""
    pipeline, platform = load_spec(path)
    tasks = []
    for name, executor in pipeline["deploymentSpec"]["executors"].items():
        resources = executor.get("container", {}).get("resources", {})
        accel = resources.get("accelerator")
        if not accel:
            continue
        k8s = platform.get(name, {})
        tasks.append(
            GpuTask(
                executor=name,
                # resourceType/resourceCount since KFP 2.11; type/count before.
                accelerator_type=accel.get("resourceType") or accel.get("type"),
                accelerator_count=int(accel.get("resourceCount") or accel.get("count") or 0),
                node_selector=dict(k8s.get("nodeSelector", {}).get("labels", {})),
                tolerations=tuple(_toleration(t) for t in k8s.get("tolerations", [])),
                cpu_limit=resources.get("resourceCpuLimit"),
                memory_limit=resources.get("resourceMemoryLimit"),
            )
        )
    return tasks


def _toleration(raw: dict[str, Any]) -> Toleration:
    return Toleration(
        key=raw.get("key"),
        operator=raw.get("operator", "Equal"),
        effect=raw.get("effect"),
        value=raw.get("value"),
    )


def device_plugins(objects: list[Obj]) -> list[Obj]:
    """DaemonSets that advertise GPUs (the NVIDIA device plugin, by image)."""
    return [
        ds
        for ds, spec in pod_specs(find(objects, "DaemonSet"))
        if any("k8s-device-plugin" in c["image"] for c in spec["containers"])
    ]


def mismatches(tasks: list[GpuTask], gpu: GPUParams, objects: list[Obj], namespace: str) -> list[str]:
    """Every way the compiled GPU tasks, params.yaml ``cluster.gpu`` and the rendered
    manifests disagree; empty when they agree. With no GPU task the params-vs-manifests
    checks still run."""
    problems: list[str] = []
    for task in tasks:
        problems += _task_vs_params(task, gpu)
        problems += _task_vs_limits(task, objects, namespace)
    problems += _plugin_vs_params(objects, gpu)
    problems += _quota_vs_params(
        objects, gpu, namespace, max([t.accelerator_count for t in tasks], default=0)
    )
    return problems


def _task_vs_params(task: GpuTask, gpu: GPUParams) -> list[str]:
    where = f"task {task.executor}"
    problems = []
    if task.accelerator_type != gpu.accelerator_type:
        problems.append(
            f"{where}: accelerator {task.accelerator_type!r} != cluster.gpu.accelerator_type "
            f"{gpu.accelerator_type!r}"
        )
    if task.accelerator_count != gpu.accelerator_limit:
        problems.append(
            f"{where}: {task.accelerator_count} accelerators != cluster.gpu.accelerator_limit "
            f"{gpu.accelerator_limit}"
        )
    if task.node_selector.get(gpu.node_selector_key) != gpu.node_selector_value:
        problems.append(
            f"{where}: node selector {task.node_selector} lacks "
            f"{gpu.node_selector_key}={gpu.node_selector_value}"
        )
    if not any(t.tolerates(gpu.toleration_key, gpu.toleration_effect) for t in task.tolerations):
        problems.append(f"{where}: does not tolerate {gpu.toleration_key}:{gpu.toleration_effect}")
    return problems


def _task_vs_limits(task: GpuTask, objects: list[Obj], namespace: str) -> list[str]:
    """A task asking for more than the namespace's LimitRange allows is rejected at admission."""
    problems = []
    for lr in find(objects, "LimitRange"):
        if lr["metadata"].get("namespace") != namespace:
            continue
        for limit in lr["spec"]["limits"]:
            if limit["type"] != "Container":
                continue
            for resource, asked in (("cpu", task.cpu_limit), ("memory", task.memory_limit)):
                ceiling = limit.get("max", {}).get(resource)
                if asked and ceiling and quantity(asked) > quantity(ceiling):
                    problems.append(
                        f"task {task.executor}: {resource} {asked} above LimitRange max {ceiling}"
                    )
    return problems


def _plugin_vs_params(objects: list[Obj], gpu: GPUParams) -> list[str]:
    plugins = device_plugins(objects)
    if not plugins:
        return ["no device plugin DaemonSet in the render"]
    problems = []
    for ds in plugins:
        spec = ds["spec"]["template"]["spec"]
        name = ds["metadata"]["name"]
        if spec.get("nodeSelector", {}).get(gpu.node_selector_key) != gpu.node_selector_value:
            problems.append(
                f"DaemonSet {name}: nodeSelector {spec.get('nodeSelector')} lacks "
                f"{gpu.node_selector_key}={gpu.node_selector_value}"
            )
        if not any(
            _toleration(t).tolerates(gpu.toleration_key, gpu.toleration_effect)
            for t in spec.get("tolerations", [])
        ):
            problems.append(
                f"DaemonSet {name}: does not tolerate {gpu.toleration_key}:{gpu.toleration_effect}"
            )
    return problems


def _quota_vs_params(objects: list[Obj], gpu: GPUParams, namespace: str, most_per_task: int) -> list[str]:
    key = f"requests.{gpu.accelerator_type}"
    quotas = [
        q
        for q in find(objects, "ResourceQuota")
        if q["metadata"].get("namespace") == namespace and key in q["spec"]["hard"]
    ]
    if not quotas:
        return [f"no ResourceQuota on {key} in namespace {namespace}"]
    needed = max(gpu.accelerator_limit, most_per_task)
    return [
        f"ResourceQuota {q['metadata']['name']}: {key}={q['spec']['hard'][key]} < {needed} (one training "
        "task)"
        for q in quotas
        if quantity(q["spec"]["hard"][key]) < needed
    ]
