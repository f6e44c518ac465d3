"""Submit the Encore pipeline to Kubeflow Pipelines: upload a version, then run or schedule it.

    python -m pipelines.submit --host https://kfp.example.com/pipeline            # one run now
    python -m pipelines.submit --host ... --schedule "0 3 * * 1"                  # weekly retraining
    python -m pipelines.submit --host ... --schedule-from k8s/overlays/prod       # the schedule in k8s/
    python -m pipelines.submit --host ... --dry-run                               # print the plan only
    python -m pipelines.submit --host ... --suite                                 # the robustness suite

Every upload is a new *pipeline version* named after what it was built from: the git commit
(short sha, ``-dirty`` when the tree has uncommitted changes) and a hash of params.yaml, so
a run in the KFP UI says which code and which parameters it ran. Re-submitting the same
commit and parameters reuses that version instead of failing on a duplicate name.

KFP 2.x keeps recurring runs in its API server (there is no manifest for them), so
``--schedule`` creates one through the API; ``--schedule-from`` reads the schedule from the
ConfigMap ``encore-retraining-schedule`` in k8s/ so it is reviewed with the deployment.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "params.yaml"
COMMITTED_SPEC = REPO / "pipelines" / "compiled" / "encore_training.yaml"
PIPELINE_NAME = "encore-training"
# --suite: the robustness suite (pipelines/robustness.py), the training DAG once per (world, seed)
SUITE_SPEC = REPO / "pipelines" / "compiled" / "encore_robustness.yaml"
SUITE_PIPELINE_NAME = "encore-robustness"
SERVICE_ACCOUNT = "encore-pipeline-runner"
SCHEDULE_CONFIGMAP = "encore-retraining-schedule"


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Schedule:
    """A KFP recurring-run trigger. ``cron`` is in KFP's six-field form (seconds first)."""

    cron: str
    max_concurrency: int = 1
    catchup: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything a submission does, decided before any server is contacted (``--dry-run``
    prints it; the real path executes exactly it)."""

    host: str
    namespace: str
    experiment: str
    pipeline_name: str
    version_name: str
    spec: str  # "committed" or "compile"
    run_name: str
    service_account: str
    params_file: Path
    params_hash: str
    arguments: dict[str, Any]
    schedule: Schedule | None


def git_revision(repo: Path = REPO) -> str:
    """Short commit sha, with ``-dirty`` if tracked or untracked files changed; ``nogit``
    outside a git checkout (a source tarball) so naming never blocks a submission."""
    try:
        sha = _git(repo, "rev-parse", "--short=7", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=normal"))
    except (OSError, subprocess.CalledProcessError):
        return "nogit"
    return f"{sha}-dirty" if dirty else sha


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def params_hash(path: Path) -> str:
    """Hash of the *validated* parameters (every section): comments and formatting in
    params.yaml do not make a new version, any value change does."""
    from components.params import load_params

    params = load_params(path)
    sections = list(params.model_dump(by_alias=True))
    return params.section_hash(*sections)


def version_name(revision: str, phash: str) -> str:
    """``<sha>[-dirty]-p<params hash>``: unique per (code, parameters), readable in the UI."""
    return f"{revision}-p{phash}"


def run_name(pipeline: str, version: str, now: datetime, schedule: Schedule | None) -> str:
    """Runs are named after their version; one-off runs also carry the UTC submission time."""
    if schedule is not None:
        return f"{pipeline}-scheduled-{version}"
    return f"{pipeline}-{version}-{now.astimezone(UTC):%Y%m%dt%H%M%Sz}"


def kfp_cron(expression: str) -> str:
    """KFP cron expressions have six fields, seconds first; a standard five-field one is
    accepted and gets ``0`` seconds (``"0 3 * * 1"`` -> ``"0 0 3 * * 1"``)."""
    fields = expression.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise ValueError(
        f"cron expression {expression!r}: expected 5 fields (standard) or 6 (KFP, seconds first)"
    )


def in_cluster_tracking_uri(namespace: str) -> str:
    """The MLflow Service of k8s/base/mlflow, as pipeline pods reach it."""
    return f"http://mlflow.{namespace}.svc.cluster.local:5000"


def run_arguments(path: Path, tracking_uri: str | None = None, suite: bool = False) -> dict[str, Any]:
    """The pipeline's parameters: one per runtime section of the params file, as JSON-compatible
    data (dates as ISO strings). The compiled spec has no defaults, so every run says exactly
    which parameters it ran with.

    ``tracking_uri`` replaces ``tracking.uri``: params.yaml's default is a local SQLite file,
    which inside a task pod would vanish with the pod; in the cluster, runs log to MLflow."""
    from components.params import RUNTIME_SECTIONS, params_from_dict

    raw = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
    if tracking_uri:
        raw["tracking"]["uri"] = tracking_uri
    params = params_from_dict(raw, where=f"{path} (as submitted)")  # fail here, not in the first task
    arguments = {section: raw[section] for section in RUNTIME_SECTIONS}
    if suite:  # the suite's (world, seed) runs, from params.yaml: robustness
        from components.robustness.settings import kfp_runs

        arguments["runs"] = kfp_runs(params)
    return arguments


def schedule_from_manifests(path: Path) -> tuple[Schedule, dict[str, str]]:
    """Read the retraining ConfigMap from a manifest file or a kustomize directory (rendered
    with ``kubectl kustomize``). Returns the schedule and the ConfigMap's data."""
    text = _render(path) if path.is_dir() else path.read_text()
    for doc in yaml.safe_load_all(text):
        is_ours = isinstance(doc, dict) and doc.get("kind") == "ConfigMap"
        if is_ours and doc["metadata"]["name"] == SCHEDULE_CONFIGMAP:
            data = {k: str(v) for k, v in (doc.get("data") or {}).items()}
            schedule = Schedule(
                cron=kfp_cron(data["cron"]),
                max_concurrency=int(data.get("max-concurrency", "1")),
                catchup=data.get("catchup", "false").lower() == "true",
            )
            return schedule, data
    raise ValueError(f"{path}: no ConfigMap named {SCHEDULE_CONFIGMAP!r}")


def _render(kustomize_dir: Path) -> str:
    proc = subprocess.run(
        ["kubectl", "kustomize", str(kustomize_dir)], capture_output=True, text=True, check=True
    )
    return proc.stdout


def check_cluster_section(path: Path) -> None:
    """The compiled spec bakes in params.yaml's ``cluster:`` section (images, GPU placement)
    from the repo's params.yaml. Submitting another file whose ``cluster:`` differs would run
    images or placements it does not describe: refuse instead."""
    from components.params import load_params

    if path.resolve() == PARAMS_FILE.resolve():
        return
    if load_params(path).section_hash("cluster") != load_params(PARAMS_FILE).section_hash("cluster"):
        raise ValueError(
            f"{path}: its cluster: section differs from {PARAMS_FILE.name}, which the pipeline is compiled "
            "with; put it in params.yaml and recompile (python -m pipelines.compile)"
        )


def make_plan(
    host: str,
    params_file: Path,
    *,
    namespace: str,
    experiment: str,
    service_account: str = SERVICE_ACCOUNT,
    use_committed: bool = False,
    schedule: Schedule | None = None,
    tracking_uri: str | None = None,
    revision: str | None = None,
    now: datetime | None = None,
    suite: bool = False,
) -> Plan:
    """Decide names and arguments; pure apart from reading params (and git, unless given)."""
    phash = params_hash(params_file)
    version = version_name(revision if revision is not None else git_revision(), phash)
    pipeline = SUITE_PIPELINE_NAME if suite else PIPELINE_NAME
    return Plan(
        host=host,
        namespace=namespace,
        experiment=experiment,
        pipeline_name=pipeline,
        version_name=version,
        spec="committed" if use_committed else "compile",
        run_name=run_name(pipeline, version, now or datetime.now(UTC), schedule),
        service_account=service_account,
        params_file=params_file,
        params_hash=phash,
        arguments=run_arguments(params_file, tracking_uri, suite),
        schedule=schedule,
    )


def describe(plan: Plan) -> str:
    """The dry-run report: every name and value the real submission would use."""
    p = plan.arguments
    suite = plan.pipeline_name == SUITE_PIPELINE_NAME
    if plan.spec == "committed":
        spec = f"{(SUITE_SPEC if suite else COMMITTED_SPEC).relative_to(REPO)} (committed)"
    else:
        spec = f"compiled now from pipelines.{'robustness' if suite else 'training'}"
    sections = [k for k in p if k != "runs"]
    summary = f"{len(sections)} sections: {', '.join(sections)}"
    if suite:
        summary += f"; runs: {', '.join(r['name'] for r in p['runs'])}"
    if plan.schedule is None:
        schedule = "none: one run now"
        last = f"start run {plan.run_name!r}"
    else:
        s = plan.schedule
        catchup = "on" if s.catchup else "off"
        schedule = (
            f"cron {s.cron!r} (KFP, seconds first), max concurrency {s.max_concurrency}, catch-up {catchup}"
        )
        last = f"create recurring run {plan.run_name!r}"
    lines = [
        "DRY RUN: nothing is sent to Kubeflow Pipelines.",
        f"host:            {plan.host}",
        f"namespace:       {plan.namespace}",
        f"experiment:      {plan.experiment}",
        f"pipeline:        {plan.pipeline_name}",
        f"pipeline spec:   {spec}",
        f"version:         {plan.version_name}",
        f"run:             {plan.run_name}",
        f"service account: {plan.service_account}",
        f"parameters:      one per section <- {plan.params_file} (hash {plan.params_hash}; {summary})",
        f"                 source.kind={p['source']['kind']}, tracking.uri={p['tracking']['uri']}",
        f"schedule:        {schedule}",
        "steps:",
        f"  1. upload pipeline {plan.pipeline_name!r} if absent, then version {plan.version_name!r} if "
        "absent",
        f"  2. get or create experiment {plan.experiment!r} in namespace {plan.namespace!r}",
        f"  3. {last} as {plan.service_account!r}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- talking to KFP


def compile_spec(out_dir: Path, suite: bool = False) -> Path:
    """Compile the training pipeline (or the robustness suite) from the current code and params.yaml."""
    from kfp import compiler

    from pipelines.robustness import robustness
    from pipelines.training import training

    path = out_dir / (SUITE_SPEC.name if suite else COMMITTED_SPEC.name)
    compiler.Compiler().compile(robustness if suite else training, str(path))
    return path


def execute(plan: Plan, spec_path: Path, token: str | None = None) -> str:
    """Carry the plan out against the KFP API; returns the run or recurring-run id."""
    import kfp

    client = kfp.Client(host=plan.host, namespace=plan.namespace, existing_token=token)
    pipeline_id = client.get_pipeline_id(plan.pipeline_name)
    if pipeline_id is None:
        # Creates the pipeline (with a first version named after it); ours is added below.
        pipeline_id = client.upload_pipeline(str(spec_path), pipeline_name=plan.pipeline_name).pipeline_id
    version_id = _find_version(client, pipeline_id, plan.version_name)
    if version_id is None:
        version_id = client.upload_pipeline_version(
            str(spec_path),
            pipeline_version_name=plan.version_name,
            pipeline_id=pipeline_id,
            description=f"params hash {plan.params_hash}",
        ).pipeline_version_id
    experiment_id = client.create_experiment(plan.experiment, namespace=plan.namespace).experiment_id
    if plan.schedule is None:
        run = client.run_pipeline(
            experiment_id,
            plan.run_name,
            params=plan.arguments,
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=plan.service_account,
        )
        return run.run_id
    s = plan.schedule
    recurring = client.create_recurring_run(
        experiment_id,
        plan.run_name,
        cron_expression=s.cron,
        max_concurrency=s.max_concurrency,
        no_catchup=not s.catchup,
        params=plan.arguments,
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=plan.service_account,
    )
    return recurring.recurring_run_id


def _find_version(client: Any, pipeline_id: str, name: str) -> str | None:
    """Id of the pipeline version called ``name``, if it was uploaded before."""
    flt = json.dumps({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]})
    response = client.list_pipeline_versions(pipeline_id, page_size=1, filter=flt)
    versions = response.pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


# --------------------------------------------------------------------------- CLI

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    host: str = typer.Option(
        ..., "--host", envvar="KFP_HOST", help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline"
    ),
    params_file: Path = typer.Option(
        PARAMS_FILE, "--params", exists=True, dir_okay=False, help="parameters passed to the run"
    ),
    use_committed: bool = typer.Option(
        False,
        "--use-committed",
        help="upload pipelines/compiled/encore_training.yaml as is (CI checked it is fresh); no compile",
    ),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="cron expression (5 fields, or KFP's 6 with seconds first): create a recurring run, not one run",
    ),
    schedule_from: Path | None = typer.Option(
        None,
        "--schedule-from",
        exists=True,
        help="read the schedule from ConfigMap encore-retraining-schedule in this manifest or kustomize dir",
    ),
    namespace: str | None = typer.Option(
        None, "--namespace", help="KFP (profile) namespace [default: params.yaml cluster.namespace]"
    ),
    experiment: str | None = typer.Option(
        None,
        "--experiment",
        help="KFP experiment [default: the schedule ConfigMap's, else params.yaml tracking.experiment]",
    ),
    service_account: str | None = typer.Option(
        None, "--service-account", help=f"service account the run's pods use [default: {SERVICE_ACCOUNT}]"
    ),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        help="MLflow URI the run logs to [default: the in-cluster MLflow Service, "
        "http://mlflow.<namespace>.svc.cluster.local:5000]; '' keeps params.yaml tracking.uri",
    ),
    token: str | None = typer.Option(
        None, "--token", envvar="KFP_TOKEN", help="bearer token for the KFP API (never printed)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print what would be done; contact no server"),
    suite: bool = typer.Option(
        False,
        "--suite",
        help="submit the robustness suite (the training DAG per world and seed of params.yaml: robustness)",
    ),
) -> None:
    """Upload a new pipeline version, then start a run or create a recurring run."""
    from components.params import load_params

    if schedule and schedule_from:
        raise typer.BadParameter("give --schedule or --schedule-from, not both")
    params = load_params(params_file)
    check_cluster_section(params_file)
    trigger: Schedule | None = None
    config: dict[str, str] = {}
    if schedule:
        trigger = Schedule(cron=kfp_cron(schedule))
    elif schedule_from:
        trigger, config = schedule_from_manifests(schedule_from)
    namespace = namespace or params.cluster.namespace
    plan = make_plan(
        host,
        params_file,
        namespace=namespace,
        experiment=experiment or config.get("experiment") or params.tracking.experiment,
        service_account=service_account or config.get("service-account") or SERVICE_ACCOUNT,
        use_committed=use_committed,
        schedule=trigger,
        tracking_uri=in_cluster_tracking_uri(namespace) if tracking_uri is None else tracking_uri,
        suite=suite,
    )
    if dry_run:
        typer.echo(describe(plan))
        return
    with tempfile.TemporaryDirectory() as tmp:
        committed = SUITE_SPEC if suite else COMMITTED_SPEC
        spec_path = committed if use_committed else compile_spec(Path(tmp), suite)
        created = execute(plan, spec_path, token)
    what = "recurring run" if trigger else "run"
    typer.echo(f"{what} {plan.run_name!r} created: id {created} (pipeline version {plan.version_name})")


if __name__ == "__main__":
    app()
