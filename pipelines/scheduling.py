"""Where and how tasks run on Kubernetes: CPU limits, GPU placement for the training tasks,
and the hardened pod every task gets.

The GPU settings come from ``cluster.gpu`` in params.yaml, and ``k8s/`` must agree with
them (a test compares the compiled spec with the manifests).
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from components.params import GPUParams

# The images' USER (docker/Dockerfile.*: numeric, so the kubelet can check runAsNonRoot).
RUN_AS = 10001
# Every path a task writes outside its artifacts, each an emptyDir: /tmp (the KFP executor's
# program and output metadata, PyTorch's caches), $HOME (library caches) and the working
# directory (DuckDB's spill folder). The KFP backend mounts its own emptyDirs at /gcs, /minio,
# /s3, /.local, /.cache and /.config (artifacts) and /kfp-launcher: mounting there too would be
# a duplicate mount path, which the API server rejects.
SCRATCH = {"scratch-tmp": "/tmp", "scratch-home": "/home/encore", "scratch-work": "/work"}


def hardened(task: PipelineTask) -> PipelineTask:
    """What kfp-kubernetes 2.17 can say about a task's pod: run as the images' non-root user
    (runAsUser/runAsGroup/runAsNonRoot; KFP's driver drops all capabilities with it), scratch
    emptyDirs for every writable path, and no pull of a tag already on the node (tags are
    immutable releases; a release compile pins digests, see :mod:`pipelines.images`).

    Not expressible per task: ``readOnlyRootFilesystem``, ``allowPrivilegeEscalation`` and the
    seccomp profile. The namespace's Pod Security ``restricted`` (k8s/base/namespace.yaml)
    rejects a pod that escalates or lacks RuntimeDefault; a read-only root needs an admission
    mutation (docs/deployment.md section 5), for which every writable path is already a volume.
    """
    kubernetes.set_security_context(task, run_as_user=RUN_AS, run_as_group=RUN_AS, run_as_non_root=True)
    for name, path in SCRATCH.items():
        kubernetes.empty_dir_mount(task, volume_name=name, mount_path=path)
    return kubernetes.set_image_pull_policy(task, "IfNotPresent")


def on_cpu(task: PipelineTask, cpu: str = "2", memory: str = "8G") -> PipelineTask:
    """CPU stages: bounded requests so a busy cluster schedules them predictably; hardened."""
    task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
    return hardened(task)


def on_gpu(task: PipelineTask, gpu: GPUParams, cpu: str = "8", memory: str = "32G") -> PipelineTask:
    """Training stages: accelerator request, GPU node selector + toleration, a RAM-backed
    ``/dev/shm`` (PyTorch data loaders share tensors through it; the default 64 MiB is too
    small); hardened like every task."""
    task.set_accelerator_type(gpu.accelerator_type).set_accelerator_limit(gpu.accelerator_limit)
    task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
    kubernetes.add_node_selector(task, label_key=gpu.node_selector_key, label_value=gpu.node_selector_value)
    kubernetes.add_toleration(task, key=gpu.toleration_key, operator="Exists", effect=gpu.toleration_effect)
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=gpu.shared_memory
    )
    return hardened(task)


FEAST_MOUNT = "/etc/encore/feast"


def with_cluster_feast(task: PipelineTask) -> PipelineTask:
    """What the features task needs for ``features.store: cluster`` (k8s/base/feast): the mounted
    feature_store.yaml and the registry/Redis settings and credentials. All optional, so a
    cluster without Feast deployed still runs the embedded store."""
    kubernetes.use_config_map_as_volume(task, "feast-feature-store", FEAST_MOUNT, optional=True)
    task.set_env_variable("ENCORE_FEAST_CONFIG", f"{FEAST_MOUNT}/feature_store.yaml")
    kubernetes.use_config_map_as_env(
        task,
        "feast-config",
        {
            "registry-host": "FEAST_REGISTRY_HOST",
            "registry-port": "FEAST_REGISTRY_PORT",
            "registry-database": "FEAST_REGISTRY_DB",
            "registry-sslmode": "PGSSLMODE",
        },
        optional=True,
    )
    kubernetes.use_secret_as_env(
        task,
        "encore-feast-registry",
        {"username": "FEAST_REGISTRY_USER", "password": "FEAST_REGISTRY_PASSWORD"},
        optional=True,
    )
    kubernetes.use_secret_as_env(
        task, "encore-redis", {"connection-string": "REDIS_CONNECTION"}, optional=True
    )
    return task
