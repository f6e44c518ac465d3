"""The committed KFP spec is fresh, and the KFP DAG mirrors the DVC DAG stage for stage."""

from __future__ import annotations

import subprocess
import sys

import yaml

from pipelines.compile import COMPILED_DIR, stale_files
from tests.conftest import REPO


def _dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


# KFP-only tasks and why: the gate's Else branch registers the challenger without moving the
# champion; DVC's single `register` stage does both paths in one step.
KFP_ONLY = {"register_hold"}


def _kfp_tasks() -> dict:
    """Leaf tasks by display name (the DVC stage name), with their effective upstream tasks.

    Tasks inside dsl.If/Else live in nested DAG components; a nested task also waits for
    whatever its enclosing condition task waits for.
    """
    spec = next(yaml.safe_load_all((COMPILED_DIR / "encore_training.yaml").read_text()))
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
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 1 and "stale" in proc.stderr


def test_every_dvc_stage_has_a_matching_kfp_task():
    dvc, kfp = set(_dvc_stages()), set(_kfp_tasks())
    assert dvc <= kfp, f"DVC stages without a KFP task: {dvc - kfp}"
    assert kfp - dvc <= KFP_ONLY, f"unexplained KFP-only tasks: {kfp - dvc - KFP_ONLY}"


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
            s for s, paths in outs.items() for d in spec.get("deps", []) for o in paths if d == o or d.startswith(o + "/")
        }
        after = set(tasks[stage].get("dependentTasks", []))
        assert upstream <= after, f"{stage}: DVC upstream {upstream}, KFP upstream {after}"


def test_components_run_in_a_pinned_image():
    spec = next(yaml.safe_load_all((COMPILED_DIR / "encore_training.yaml").read_text()))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images and all(not i.endswith(":latest") and ":" in i for i in images), images
