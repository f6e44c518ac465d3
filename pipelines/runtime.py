"""What runs *inside* a KFP component: validate the sections it got, call the stage, report metrics.

Each op in :mod:`pipelines.ops` is one import and one call into this module, so the
component bodies stay a few lines and every behaviour lives in ``components/``. A task
receives only the params sections its stage declares; they are validated here exactly as
``params.yaml`` is (unknown keys, types), and reading any other section fails loudly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from components.errors import EncoreError
from components.params import Params, SourceParams, params_from_dict
from components.stage import execute


def _params(sections: dict, stage_sections: tuple[str, ...], stage: str) -> Params:
    """Validate the sections a task received.

    KFP carries dict parameters as protobuf Structs, where every number is a double, so
    integral floats are turned back into ints first (a float field accepts an int).
    """
    return params_from_dict(
        _ints_restored(sections),
        where=f"pipeline parameters of task '{stage}'",
        only=stage_sections,
        stage=stage,
    )


def _ints_restored(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _ints_restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints_restored(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _report(metrics_artifact: Any, metrics: dict[str, Any]) -> None:
    for key, value in metrics.items():
        # KFP metadata cannot hold NaN (e.g. a metric undefined for this run): leave it out
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            metrics_artifact.log_metric(key, float(value))


def logs_fingerprint(source: dict) -> str:
    """What the first slot will read, as a value for its cache key: with ``source.kind: logs``
    a content hash of ``source.logs_dir`` (every file's relative path, size and bytes, in
    order), ``missing:<path>`` when there is no such folder (ingest then fails with its own
    error; a failed task is never cached); ``world`` when simulating, which is a function of
    the params alone (already in the key).

    KFP keys a task's cache on its parameter values and on its input artifacts' *names*, never
    on what a path it reads holds: without this value, a run over new logs with unchanged
    params reuses last time's ingest, and every task after it last time's outputs."""
    sp = SourceParams.model_validate(source)
    if sp.kind != "logs":
        return "world"
    folder = Path(sp.logs_dir)
    if not folder.is_dir():
        return f"missing:{folder}"
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def raw_logs(
    sections: dict,
    raw_dir: str,
    world_dir: str,
    metrics_artifact: Any,
    fingerprint: str | None = None,
) -> None:
    """The first slot: simulate the world or ingest real logs, per ``source.kind``.

    ``fingerprint``: :func:`logs_fingerprint` as the pipeline computed it before this task (it is
    this task's cache key). The logs must still hold it after the ingest; otherwise they changed
    while being read, and the task fails rather than be cached under a key its output does not
    match."""
    from components.raw_logs import SECTIONS
    from components.raw_logs.core import run, stage_name

    p = _params(sections, SECTIONS, "simulate")
    seed_of = (lambda q: q.simulate.seed) if p.source.kind == "world" else None

    def checked(q: Params) -> dict[str, Any]:
        metrics = run(q, Path(raw_dir), Path(world_dir), progress=False)
        now = logs_fingerprint(sections["source"]) if fingerprint is not None else None
        if now != fingerprint:
            raise EncoreError(
                f"{q.source.logs_dir}: the logs changed while this run ingested them (fingerprint "
                f"{fingerprint} before, {now} after); the ingested copy may mix both. Resubmit the run."
            )
        return metrics

    m = execute(stage_name(p), SECTIONS, p, checked, seed_of=seed_of)
    _report(metrics_artifact, m)


def validate(sections: dict, raw_dir: str, report_path: str, metrics_artifact: Any) -> None:
    """Great Expectations over the raw logs; the HTML report becomes the task's HTML artifact."""
    from components.validate import SECTIONS
    from components.validate.core import run

    m = execute(
        "validate",
        SECTIONS,
        _params(sections, SECTIONS, "validate"),
        lambda q: run(q, Path(raw_dir), Path(report_path), None),
    )
    _report(metrics_artifact, m)


def experiments(sections: dict, raw_dir: str, world_dir: str, out_dir: str, metrics_artifact: Any) -> None:
    """The experiment library (simulated arms, or the logs' experiments table)."""
    from components.experiments import SECTIONS
    from components.experiments.core import run

    m = execute(
        "experiments",
        SECTIONS,
        _params(sections, SECTIONS, "experiments"),
        lambda q: run(q, Path(raw_dir), Path(world_dir), Path(out_dir), progress=False),
    )
    _report(metrics_artifact, m)


def signals(
    sections: dict,
    raw_dir: str,
    labels_dir: str,
    library_dir: str,
    out_dir: str,
    report_html: str,
    summary_md: str,
    metrics_artifact: Any,
) -> None:
    """The signal scorecard; its page and summary become the task's HTML and Markdown artifacts."""
    import shutil
    import tempfile

    from components.signals import SECTIONS
    from components.signals.core import run

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "signals.html"
        m = execute(
            "signals",
            SECTIONS,
            _params(sections, SECTIONS, "signals"),
            lambda q: run(q, Path(raw_dir), Path(labels_dir), Path(library_dir), Path(out_dir), page, False),
        )
        shutil.copy(page, report_html)
        shutil.copy(page.with_suffix(".md"), summary_md)
    _report(metrics_artifact, m)


def features(sections: dict, raw_dir: str, out_dir: str, metrics_artifact: Any) -> None:
    """Feature sources, Feast apply + materialise, and the point-in-time training frame."""
    from components.features import SECTIONS
    from components.features.core import run

    m = execute(
        "features",
        SECTIONS,
        _params(sections, SECTIONS, "features"),
        lambda q: run(q, Path(raw_dir), Path(out_dir)),
    )
    _report(metrics_artifact, m)


def label(sections: dict, raw_dir: str, out_dir: str, metrics_artifact: Any) -> None:
    """Mid-term reward labels per impression."""
    from components.label import SECTIONS
    from components.label.core import run

    m = execute(
        "label",
        SECTIONS,
        _params(sections, SECTIONS, "label"),
        lambda q: run(q, Path(raw_dir), Path(out_dir)),
    )
    _report(metrics_artifact, m)


def _params_file(sections: dict, folder: Path) -> Path:
    """The task's sections as a params file for a CLI launched in a subprocess."""
    import yaml

    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(_ints_restored(sections), sort_keys=False))
    return path


def _launched(
    module: str, sections: dict, stage_sections: tuple[str, ...], args: list[str], metrics_artifact: Any
) -> None:
    """Run a training CLI through ``accelerate launch`` (CPU here, every GPU of the node on the
    cluster) with the task's sections as a params file, then report its metrics."""
    import json
    import tempfile

    from components.launch import launch

    _params(sections, stage_sections, module.rsplit(".", 1)[-1])  # fail fast, in this process, on bad params
    with tempfile.TemporaryDirectory() as tmp:
        metrics_file = Path(tmp) / "metrics.json"
        launch(
            module,
            [
                "--params",
                str(_params_file(sections, Path(tmp))),
                *args,
                "--metrics",
                str(metrics_file),
                "--no-progress",
            ],
        )
        _report(metrics_artifact, json.loads(metrics_file.read_text()))


def reward_model(
    sections: dict,
    variant: str,
    raw_dir: str,
    features_dir: str,
    labels_dir: str,
    signals_dir: str,
    library_dir: str,
    model_dir: str,
    metrics_artifact: Any,
) -> None:
    """Train a reward model (mid-term or click)."""
    from components.reward_model import SECTIONS

    _launched(
        "components.reward_model",
        sections,
        SECTIONS,
        [
            "--variant",
            variant,
            "--raw-dir",
            raw_dir,
            "--features-dir",
            features_dir,
            "--labels-dir",
            labels_dir,
            "--signals-dir",
            signals_dir,
            "--experiments-dir",
            library_dir,
            "--out-dir",
            model_dir,
        ],
        metrics_artifact,
    )


def sft_policy(
    sections: dict, raw_dir: str, features_dir: str, model_dir: str, metrics_artifact: Any
) -> None:
    """Train the generative policy by imitation."""
    from components.sft_policy import SECTIONS

    _launched(
        "components.sft_policy",
        sections,
        SECTIONS,
        [
            "--raw-dir",
            raw_dir,
            "--features-dir",
            features_dir,
            "--out-dir",
            model_dir,
        ],
        metrics_artifact,
    )


def rlhf_policy(
    sections: dict,
    variant: str,
    raw_dir: str,
    features_dir: str,
    sft_dir: str,
    reward_dir: str,
    world_dir: str,
    model_dir: str,
    metrics_artifact: Any,
) -> None:
    """GRPO fine-tuning. Checkpoints go to the pod's scratch space: a retried task starts over
    (mount a volume at ENCORE_CHECKPOINT_DIR to resume across retries)."""
    import os
    import tempfile

    from components.rlhf_policy import SECTIONS

    checkpoints = os.environ.get("ENCORE_CHECKPOINT_DIR") or tempfile.mkdtemp(prefix="rl-checkpoints-")
    _launched(
        "components.rlhf_policy",
        sections,
        SECTIONS,
        [
            "--variant",
            variant,
            "--raw-dir",
            raw_dir,
            "--features-dir",
            features_dir,
            "--sft-dir",
            sft_dir,
            "--reward-dir",
            reward_dir,
            "--world-dir",
            world_dir,
            "--out-dir",
            model_dir,
            "--checkpoint-dir",
            str(Path(checkpoints) / variant),
        ],
        metrics_artifact,
    )


def loop(
    sections: dict,
    raw_dir: str,
    world_dir: str,
    features_dir: str,
    labels_dir: str,
    signals_dir: str,
    library_dir: str,
    sft_dir: str,
    reward_dir: str,
    policy_dir: str,
    out_dir: str,
    metrics_artifact: Any,
) -> None:
    """The closed loop (:mod:`pipelines.loop`). Its rounds' work goes to the pod's scratch space: a
    retried task starts over (mount a volume at ENCORE_LOOP_WORK_DIR to resume across retries)."""
    import os
    import tempfile

    from pipelines.loop import SECTIONS
    from pipelines.loop.core import RoundDirs, run

    work = os.environ.get("ENCORE_LOOP_WORK_DIR") or tempfile.mkdtemp(prefix="loop-")
    start = RoundDirs(
        Path(raw_dir),
        Path(world_dir),
        Path(features_dir),
        Path(labels_dir),
        Path(reward_dir),
        Path(policy_dir),
    )
    m = execute(
        "loop",
        SECTIONS,
        _params(sections, SECTIONS, "loop"),
        lambda q: run(
            q, start, Path(signals_dir), Path(library_dir), Path(sft_dir), Path(work), Path(out_dir), False
        ),
        seed_of=lambda q: q.loop.seed,
    )
    _report(metrics_artifact, m)


def evaluate(
    sections: dict,
    raw_dir: str,
    features_dir: str,
    labels_dir: str,
    signals_dir: str,
    library_dir: str,
    world_dir: str,
    sft_dir: str,
    loop_dir: str,
    click_policy_dir: str,
    evaluation_dir: str,
    report_html: str,
    summary_md: str,
    metrics_artifact: Any,
) -> bool:
    """Evaluate the candidates; the HTML report and Markdown summary become the task's artifacts.
    Returns the gate's decision (promote?) for the register task."""
    import shutil

    from components.evaluate import SECTIONS
    from components.evaluate.core import run
    from components.evaluate.rounds import round_policies
    from components.registry.gate import read_decision

    policies = {
        "sft": Path(sft_dir),
        "rlhf_click": Path(click_policy_dir),
        **round_policies(Path(loop_dir)),
        "rlhf_midterm": Path(loop_dir) / "policy",
    }
    m = execute(
        "evaluate",
        SECTIONS,
        _params(sections, SECTIONS, "evaluate"),
        lambda q: run(
            q,
            Path(raw_dir),
            Path(features_dir),
            Path(labels_dir),
            Path(world_dir),
            Path(loop_dir) / "reward",
            policies,
            Path(evaluation_dir),
            progress=False,
            signals_dir=Path(signals_dir),
            experiments_dir=Path(library_dir),
            loop_dir=Path(loop_dir),
        ),
    )
    shutil.copy(Path(evaluation_dir) / "evaluation.html", report_html)
    shutil.copy(Path(evaluation_dir) / "summary.md", summary_md)
    _report(metrics_artifact, m)
    return bool(read_decision(Path(evaluation_dir))["promote"])


def register(
    sections: dict,
    promote: bool,
    policy_dir: str,
    reward_dir: str,
    evaluation_dir: str,
    metrics_artifact: Any,
    pipeline_run_id: str = "",
) -> None:
    """Register in MLflow; the champion alias moves only if the gate said promote."""
    from components.paths import project_root
    from components.register import SECTIONS
    from components.register.core import run

    record = execute(
        "register",
        SECTIONS,
        _params(sections, SECTIONS, "register"),
        lambda q: run(
            q,
            Path(policy_dir),
            Path(reward_dir),
            Path(evaluation_dir),
            project_root(),
            pipeline_run_id or None,
            promote=promote,
        ),
        run_open_during_stage=True,  # register logs its models and gate.json to the stage's run
    )
    _report(metrics_artifact, {k: float(v) for k, v in record.items() if isinstance(v, (bool, int, float))})


def suite_world(simulate: dict, register: dict, tracking: dict, run: dict) -> dict[str, dict]:
    """The robustness suite's sections for one (world, seed) run (see
    :func:`components.robustness.settings.world_sections`)."""
    from components.robustness.settings import world_sections

    return world_sections(
        _ints_restored(simulate), _ints_restored(register), _ints_restored(tracking), _ints_restored(run)
    )


def suite_row(run: dict, evaluation_dir: str) -> dict:
    """One run's row of the suite's table, from the evaluation's flat metrics."""
    import json
    from dataclasses import asdict

    from components.evaluate.core import FLAT_METRICS
    from components.robustness.table import row_from_metrics

    run = _ints_restored(run)
    metrics = json.loads((Path(evaluation_dir) / FLAT_METRICS).read_text())
    row = row_from_metrics(run["name"], run["world"], run["seed"], run["mechanism"], float("nan"), metrics)
    return json.loads(json.dumps(asdict(row), default=float))


def robustness_table(rows: list[dict], table_dir: str, summary_md: str) -> None:
    """The suite's table (JSON, Markdown, figure) from every run's row; the Markdown is the summary."""
    import shutil

    from components.robustness.table import TABLE_MD, row_from_dict, write

    ordered = sorted((row_from_dict(_ints_restored(r)) for r in rows), key=lambda r: (r.world, r.seed))
    write(ordered, Path(table_dir))
    shutil.copy(Path(table_dir) / TABLE_MD, summary_md)
