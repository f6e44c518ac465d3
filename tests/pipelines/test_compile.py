"""The committed KFP spec is fresh, the KFP DAG mirrors the DVC DAG stage for stage, and each
task receives only the params sections its stage reads."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import yaml

from components.params import RUNTIME_SECTIONS
from pipelines.compile import COMPILED_DIR, stale_files
from tests.conftest import REPO

# Steps one DAG has and the other does not need, both guarding against stale work (dvc.yaml's header).
DVC_ONLY = {"champion"}  # KFP's evaluate reads the registry at run time and is never cached
KFP_ONLY = {"logs_fingerprint"}  # DVC hashes ${source.logs_dir} itself
NEVER_CACHED = {
    "logs_fingerprint": "reads the logs as they are now",
    "features": "writes the online store",
    "evaluate": "reads the registry's champion",
    "register": "writes the registry",
}


def _dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _spec() -> dict:
    return next(yaml.safe_load_all((COMPILED_DIR / "encore_training.yaml").read_text()))


def _kfp_tasks() -> dict:
    """Leaf tasks by display name (the DVC stage name), with their effective upstream tasks.

    Tasks inside dsl.If/Else live in nested DAG components; a nested task also waits for
    whatever its enclosing condition task waits for.
    """
    spec = _spec()
    leaves: dict = {}

    def walk(tasks: dict, inherited: set[str], display: dict) -> None:
        names = {**display, **{key: t["taskInfo"]["name"] for key, t in tasks.items()}}
        for key, task in tasks.items():
            upstream = inherited | {names[d] for d in task.get("dependentTasks", [])}
            child = spec["components"][task["componentRef"]["name"]]
            if "dag" in child:
                walk(child["dag"]["tasks"], upstream, names)
            else:
                leaves[names[key]] = {**task, "dependentTasks": sorted(upstream)}

    walk(spec["root"]["dag"]["tasks"], set(), {})
    return leaves


def test_committed_spec_is_fresh():
    assert stale_files() == [], "run `python -m pipelines.compile` and commit the result"


def test_check_flag_fails_on_a_stale_spec(tmp_path):
    stale = tmp_path / "encore_training.yaml"
    stale.write_text((COMPILED_DIR / "encore_training.yaml").read_text().replace("encore-training", "other"))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--check", "--out-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "stale" in proc.stderr


def test_every_dvc_stage_has_a_matching_kfp_task():
    assert set(_dvc_stages()) - DVC_ONLY == set(_kfp_tasks()) - KFP_ONLY
    assert DVC_ONLY <= set(_dvc_stages()) and KFP_ONLY <= set(_kfp_tasks())


def _produced(spec: dict) -> list[str]:
    paths = []
    for key in ("outs", "metrics", "plots"):
        paths += [list(o)[0] if isinstance(o, dict) else o for o in spec.get(key, [])]
    return paths


def test_kfp_tasks_follow_the_dvc_dependencies():
    """If DVC stage B depends on something stage A writes, KFP task B runs after task A."""
    stages, tasks = _dvc_stages(), _kfp_tasks()
    outs = {stage: _produced(spec) for stage, spec in stages.items()}
    for stage, spec in stages.items():
        if stage not in tasks:
            continue
        upstream = {
            s
            for s, paths in outs.items()
            for d in spec.get("deps", [])
            for o in paths
            if (d == o or d.startswith(o + "/")) and s not in DVC_ONLY
        }
        after = set(tasks[stage].get("dependentTasks", []))
        assert upstream <= after, f"{stage}: DVC upstream {upstream}, KFP upstream {after}"


def test_components_run_in_a_pinned_image():
    spec = _spec()
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images and all(not i.endswith(":latest") and ":" in i for i in images), images


def _sections_read(task: dict) -> set[str]:
    """Pipeline parameters (= params sections) a task consumes."""
    params = task.get("inputs", {}).get("parameters", {})
    return {p["componentInputParameter"] for p in params.values() if "componentInputParameter" in p}


def test_the_spec_does_not_embed_params_yaml():
    inputs = _spec()["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == set(RUNTIME_SECTIONS)
    assert not any("defaultValue" in p for p in inputs.values()), "run arguments, not compiled defaults"


def test_each_task_receives_exactly_the_sections_its_stage_declares():
    stages = _dvc_stages()
    tasks = _kfp_tasks()
    for name, task in tasks.items():
        if name in KFP_ONLY:
            continue
        module = re.search(r"-m ((?:components|pipelines)\.\w+)", stages[name]["cmd"]).group(1)
        declared = set(importlib.import_module(module).SECTIONS) | {"tracking"}
        assert _sections_read(task) == declared, name
    assert _sections_read(tasks["logs_fingerprint"]) == {"source"}


def test_editing_rlhf_params_keeps_every_upstream_task_cached():
    """A task's cache key is its inputs: the rlhf_policy section reaches only the RL tasks and tasks
    downstream of them (the loop runs RL again; register); everything upstream keeps its inputs, so
    its cache."""
    tasks = _kfp_tasks()
    readers = {name for name, task in tasks.items() if "rlhf_policy" in _sections_read(task)}
    assert readers == {"rlhf_policy", "rlhf_policy_click", "loop", "register"}
    downstream_of_rl: set[str] = set()
    frontier = {"rlhf_policy", "rlhf_policy_click"}
    while frontier:  # every task that depends on an RL task, directly or through others
        frontier = {n for n, t in tasks.items() if frontier & set(t["dependentTasks"])} - downstream_of_rl
        downstream_of_rl |= frontier
    assert readers - {"rlhf_policy", "rlhf_policy_click"} <= downstream_of_rl
    upstream = {
        "simulate",
        "validate",
        "features",
        "label",
        "reward_model",
        "reward_model_click",
        "sft_policy",
    }
    assert upstream <= set(tasks) and not upstream & readers


def test_one_register_task_consumes_the_gate_as_a_typed_input():
    tasks = _kfp_tasks()
    assert [name for name in tasks if name.startswith("register")] == ["register"]
    promote = tasks["register"]["inputs"]["parameters"]["promote"]["taskOutputParameter"]
    assert promote["outputParameterKey"] == "promote"
    spec = _spec()
    evaluate = spec["components"][
        spec["root"]["dag"]["tasks"][promote["producerTask"]]["componentRef"]["name"]
    ]
    assert evaluate["outputDefinitions"]["parameters"]["promote"]["parameterType"] == "BOOLEAN"


# --------------------------------------------------------------------------- no stale work


def _cached(task: dict) -> bool:
    return task.get("cachingOptions", {}).get("enableCache", False)


def test_exactly_the_tasks_that_touch_outside_state_are_never_cached():
    tasks = _kfp_tasks()
    assert {name for name, task in tasks.items() if not _cached(task)} == set(NEVER_CACHED)


def test_the_logs_content_is_part_of_the_ingest_cache_key():
    """KFP keys a task's cache on parameter values and input artifact names, never on what a
    path holds: simulate stays cached, but on a value that the never-cached fingerprint task
    computes from the logs each run (new logs: a new key, so a fresh ingest and fresh tasks
    after it; the same logs: the same key, every cache kept)."""
    tasks = _kfp_tasks()
    simulate, fingerprint = tasks["simulate"], tasks["logs_fingerprint"]
    assert _cached(simulate) and not _cached(fingerprint)
    value = simulate["inputs"]["parameters"]["logs_fingerprint"]["taskOutputParameter"]
    producer = _spec()["root"]["dag"]["tasks"][value["producerTask"]]
    assert producer["taskInfo"]["name"] == "logs_fingerprint"
    assert "logs_fingerprint" in simulate["dependentTasks"]


# --------------------------------------------------------------------------- hardened task pods


def _platform() -> dict:
    """Kubernetes settings per executor (the second document of the compiled spec)."""
    docs = list(yaml.safe_load_all((COMPILED_DIR / "encore_training.yaml").read_text()))
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_task_runs_as_the_images_non_root_user():
    from pipelines.scheduling import RUN_AS

    executors, platform = _spec()["deploymentSpec"]["executors"], _platform()
    assert set(platform) == set(executors), "every task goes through on_cpu/on_gpu (hardened)"
    for name, config in platform.items():
        sc = config.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True, name
        assert int(sc.get("runAsUser", 0)) == RUN_AS and int(sc.get("runAsGroup", 0)) == RUN_AS, name


def test_every_task_writes_only_to_scratch_volumes():
    """/tmp, $HOME and the working directory are emptyDirs (KFP mounts its own at /gcs, /minio,
    /s3, /.local, /.cache, /.config): a read-only root filesystem is then possible."""
    from pipelines.scheduling import SCRATCH

    for name, config in _platform().items():
        mounts = {m["mountPath"]: m["volumeName"] for m in config.get("emptyDirMounts", [])}
        assert {path: mounts.get(path) for path in SCRATCH.values()} == {
            path: volume for volume, path in SCRATCH.items()
        }, name
        assert not {"/gcs", "/minio", "/s3", "/.local", "/.cache", "/.config"} & set(mounts), name


def test_no_task_pulls_a_tag_again():
    for name, config in _platform().items():
        assert config.get("imagePullPolicy") == "IfNotPresent", name


def test_robustness_pipeline_runs_the_training_dag_per_world_in_parallel_and_collects_the_rows():
    """One ParallelFor over the suite's runs holds the whole training DAG (every stage, on the
    iteration's world: simulate and register read suite_world's outputs), and the table after the
    loop takes the rows of every iteration."""
    spec = next(yaml.safe_load_all((COMPILED_DIR / "encore_robustness.yaml").read_text()))
    root = spec["root"]["dag"]["tasks"]
    loops = [t for t in root.values() if "parameterIterator" in t]
    assert len(loops) == 1 and loops[0]["iteratorPolicy"]["parallelismLimit"] >= 1
    loop = spec["components"][loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    names = {t["taskInfo"]["name"] for t in loop.values()}
    stages = set(_dvc_stages()) - DVC_ONLY
    assert stages | {"suite_world", "suite_row"} <= names, stages - names
    by_name = {t["taskInfo"]["name"]: t for t in loop.values()}
    for stage, section in (("simulate", "simulate"), ("register", "register"), ("evaluate", "tracking")):
        source = by_name[stage]["inputs"]["parameters"][section]["taskOutputParameter"]
        assert source["producerTask"] == "suite-world", (stage, source)
    table = next(t for t in root.values() if t["taskInfo"]["name"] == "robustness_table")
    rows = table["inputs"]["parameters"]["rows"]["taskOutputParameter"]
    assert rows["producerTask"] == next(k for k, t in root.items() if "parameterIterator" in t)
    assert rows["outputParameterKey"].endswith("suite-row-Output")  # the loop's collected rows
