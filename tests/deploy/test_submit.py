"""pipelines.submit: names, schedule and plan decided offline; --dry-run contacts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import yaml

from components.params import load_params
from pipelines import submit
from tests.deploy.manifests import K8S, REPO

NOW = datetime(2026, 11, 26, 3, 4, 5, tzinfo=UTC)


def test_version_name_says_commit_and_parameters():
    assert submit.version_name("abc1234", "0123456789ab") == "abc1234-p0123456789ab"
    assert submit.version_name("abc1234-dirty", "0123456789ab") == "abc1234-dirty-p0123456789ab"


def test_git_revision_marks_a_dirty_tree(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert submit.git_revision(tmp_path) == "nogit"
    git("init", "-q")
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    clean = submit.git_revision(tmp_path)
    assert len(clean) == 7 and "-" not in clean
    (tmp_path / "new.txt").write_text("change")
    assert submit.git_revision(tmp_path) == f"{clean}-dirty"


def test_params_hash_ignores_formatting_but_not_values(tmp_path):
    original = (REPO / "params.yaml").read_text()
    reformatted = tmp_path / "a.yaml"
    reformatted.write_text(
        "# a comment that changes nothing\n" + yaml.safe_dump(yaml.safe_load(original), sort_keys=True)
    )
    changed = tmp_path / "b.yaml"
    changed.write_text(original.replace("seed: 20261125", "seed: 20261126"))
    base = submit.params_hash(REPO / "params.yaml")
    assert submit.params_hash(reformatted) == base
    assert submit.params_hash(changed) != base


def test_run_names():
    assert submit.run_name("encore-training", "v", NOW, None) == "encore-training-v-20261126t030405z"
    assert (
        submit.run_name("encore-training", "v", NOW, submit.Schedule("0 0 3 * * 1"))
        == "encore-training-scheduled-v"
    )


@pytest.mark.parametrize(
    "given, kfp",
    [("0 3 * * 1", "0 0 3 * * 1"), ("0 0 3 * * 1", "0 0 3 * * 1"), ("*/15  * * * *", "0 */15 * * * *")],
)
def test_cron_is_turned_into_kfp_form(given, kfp):
    assert submit.kfp_cron(given) == kfp


def test_cron_with_a_wrong_field_count_is_refused():
    with pytest.raises(ValueError, match="expected 5 fields"):
        submit.kfp_cron("0 3 * *")


@pytest.mark.parametrize("overlay, cron", [("prod", "0 0 3 * * 1"), ("dev", "0 0 4 * * *")])
def test_schedule_is_read_from_the_rendered_overlay(rendered, overlay, cron):
    schedule, data = submit.schedule_from_manifests(K8S / "overlays" / overlay)
    assert schedule == submit.Schedule(cron=cron, max_concurrency=1, catchup=False)
    assert data["service-account"] == "encore-pipeline-runner" and data["experiment"] == "encore"


def test_schedule_from_a_plain_manifest_file(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}, "data": {}},
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": submit.SCHEDULE_CONFIGMAP},
                    "data": {"cron": "30 2 * * *", "max-concurrency": "2", "catchup": "true"},
                },
            ]
        )
    )
    schedule, _ = submit.schedule_from_manifests(manifest)
    assert schedule == submit.Schedule(cron="0 30 2 * * *", max_concurrency=2, catchup=True)


def test_plan_runs_in_cluster_against_the_in_cluster_mlflow(cluster):
    plan = submit.make_plan(
        "http://kfp.invalid",
        REPO / "params.yaml",
        namespace=cluster.namespace,
        experiment="encore",
        use_committed=True,
        revision="abc1234",
        now=NOW,
        tracking_uri=submit.in_cluster_tracking_uri(cluster.namespace),
    )
    assert plan.version_name.startswith("abc1234-p") and plan.run_name.startswith("encore-training-abc1234-p")
    assert plan.arguments["tracking"]["uri"] == "http://mlflow.encore.svc.cluster.local:5000"
    assert plan.service_account == "encore-pipeline-runner" and plan.schedule is None


def test_the_suite_plan_passes_every_world_and_seed_as_runs(cluster):
    """--suite: the robustness pipeline, with the runtime sections and one run per (world, seed)."""
    plan = submit.make_plan(
        "http://kfp.invalid",
        REPO / "params.yaml",
        namespace=cluster.namespace,
        experiment="encore",
        use_committed=True,
        revision="abc1234",
        now=NOW,
        suite=True,
    )
    assert plan.pipeline_name == "encore-robustness" and plan.run_name.startswith("encore-robustness-")
    runs = plan.arguments["runs"]
    params = load_params(REPO / "params.yaml")
    assert len(runs) == len(params.robustness.worlds) * len(params.robustness.seeds)
    assert {r["world"] for r in runs} == {w.name for w in params.robustness.worlds}
    assert "robustness" not in plan.arguments and "simulate" in plan.arguments
    assert "runs: default-s" in submit.describe(plan)


def test_another_cluster_section_is_refused(tmp_path):
    other = tmp_path / "params.yaml"
    other.write_text((REPO / "params.yaml").read_text().replace("namespace: encore", "namespace: elsewhere"))
    with pytest.raises(ValueError, match="cluster: section differs"):
        submit.check_cluster_section(other)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KFP_HOST": "", "KFP_TOKEN": "not-to-be-printed"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.submit", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_help():
    proc = _cli("--help")
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "--schedule" in proc.stdout


def test_dry_run_prints_the_whole_plan():
    # An unroutable host: a dry run that tried to connect would hang or fail, not print.
    proc = _cli("--host", "http://kfp.invalid:1", "--use-committed", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    revision = submit.git_revision()
    version = submit.version_name(revision, submit.params_hash(REPO / "params.yaml"))
    for expected in (
        "DRY RUN",
        "host:            http://kfp.invalid:1",
        "pipeline:        encore-training",
        f"version:         {version}",
        f"run:             encore-training-{version}-",
        "service account: encore-pipeline-runner",
        "namespace:       encore",
        "tracking.uri=http://mlflow.encore.svc.cluster.local:5000",
        "schedule:        none: one run now",
        "pipelines/compiled/encore_training.yaml (committed)",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    assert "not-to-be-printed" not in out


def test_dry_run_with_the_schedule_from_k8s():
    proc = _cli("--host", "http://kfp.invalid:1", "--schedule-from", "k8s/overlays/prod", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert (
        "cron '0 0 3 * * 1'" in proc.stdout
        and "create recurring run 'encore-training-scheduled-" in proc.stdout
    )


def test_dry_run_with_a_standard_cron():
    proc = _cli("--host", "http://kfp.invalid:1", "--schedule", "0 3 * * 1", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "cron '0 0 3 * * 1' (KFP, seconds first)" in proc.stdout


def test_both_schedule_options_are_refused():
    proc = _cli("--host", "h", "--schedule", "0 3 * * 1", "--schedule-from", "k8s/overlays/prod", "--dry-run")
    assert proc.returncode != 0 and "not both" in proc.stderr
