"""What runs *inside* a KFP component: validate params, call the stage, report metrics.

Each op in :mod:`pipelines.ops` is one import and one call into this module, so the
component bodies stay a few lines and every behaviour lives in ``components/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.params import Params, params_from_dict
from components.stage import execute


def _params(params: dict) -> Params:
    """Validate the pipeline's params dict.

    KFP carries dict parameters as protobuf Structs, where every number is a double, so
    integral floats are turned back into ints first (a float field accepts an int).
    """
    return params_from_dict(_ints_restored(params), where="pipeline parameter 'params'")


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


def raw_logs(params: dict, raw_dir: str, world_dir: str, metrics_artifact: Any) -> None:
    """The first slot: simulate the world or ingest real logs, per ``source.kind``."""
    p = _params(params)
    if p.source.kind == "world":
        from components.simulate.core import run as simulate

        m = execute("simulate", p, lambda q: simulate(q, Path(raw_dir), Path(world_dir)), seed_of=lambda q: q.simulate.seed)
    else:
        from components.ingest.core import run as ingest

        m = execute("ingest", p, lambda q: ingest(q, Path(q.source.logs_dir), Path(raw_dir), Path(world_dir)))
    _report(metrics_artifact, m)


def validate(params: dict, raw_dir: str, report_path: str, metrics_artifact: Any) -> None:
    """Great Expectations over the raw logs; the HTML report becomes the task's HTML artifact."""
    from components.validate.core import run

    p = _params(params)
    m = execute("validate", p, lambda q: run(q, Path(raw_dir), Path(report_path), None))
    _report(metrics_artifact, m)


def features(params: dict, raw_dir: str, out_dir: str, metrics_artifact: Any) -> None:
    """Feature sources, Feast apply + materialise, and the point-in-time training frame."""
    from components.features.core import run

    m = execute("features", _params(params), lambda q: run(q, Path(raw_dir), Path(out_dir)))
    _report(metrics_artifact, m)


def label(params: dict, raw_dir: str, out_dir: str, metrics_artifact: Any) -> None:
    """Mid-term reward labels per impression."""
    from components.label.core import run

    m = execute("label", _params(params), lambda q: run(q, Path(raw_dir), Path(out_dir)))
    _report(metrics_artifact, m)


def _params_file(params: dict, folder: Path) -> Path:
    """The pipeline's params dict as a params.yaml for a CLI launched in a subprocess."""
    import yaml

    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(_ints_restored(params), sort_keys=False))
    return path


def _launched(module: str, params: dict, args: list[str], metrics_artifact: Any) -> None:
    """Run a training CLI through ``accelerate launch`` (CPU here, every GPU of the node on the
    cluster) with the run's params as a file, then report its metrics."""
    import json
    import tempfile

    from components.launch import launch

    _params(params)  # fail fast, in this process, on bad params
    with tempfile.TemporaryDirectory() as tmp:
        metrics_file = Path(tmp) / "metrics.json"
        launch(module, ["--params", str(_params_file(params, Path(tmp))), *args, "--metrics", str(metrics_file), "--no-progress"])
        _report(metrics_artifact, json.loads(metrics_file.read_text()))


def reward_model(params: dict, variant: str, raw_dir: str, features_dir: str, labels_dir: str,
                 model_dir: str, metrics_artifact: Any) -> None:
    """Train a reward model (mid-term or click)."""
    _launched("components.reward_model", params, [
        "--variant", variant, "--raw-dir", raw_dir, "--features-dir", features_dir,
        "--labels-dir", labels_dir, "--out-dir", model_dir,
    ], metrics_artifact)


def sft_policy(params: dict, raw_dir: str, features_dir: str, model_dir: str, metrics_artifact: Any) -> None:
    """Train the generative policy by imitation."""
    _launched("components.sft_policy", params, [
        "--raw-dir", raw_dir, "--features-dir", features_dir, "--out-dir", model_dir,
    ], metrics_artifact)


def rlhf_policy(params: dict, variant: str, raw_dir: str, features_dir: str, sft_dir: str, reward_dir: str,
                world_dir: str, model_dir: str, metrics_artifact: Any) -> None:
    """GRPO fine-tuning. Checkpoints go to the pod's scratch space: a retried task starts over
    (mount a volume at ENCORE_CHECKPOINT_DIR to resume across retries)."""
    import os
    import tempfile

    checkpoints = os.environ.get("ENCORE_CHECKPOINT_DIR") or tempfile.mkdtemp(prefix="rl-checkpoints-")
    _launched("components.rlhf_policy", params, [
        "--variant", variant, "--raw-dir", raw_dir, "--features-dir", features_dir, "--sft-dir", sft_dir,
        "--reward-dir", reward_dir, "--world-dir", world_dir, "--out-dir", model_dir,
        "--checkpoint-dir", str(Path(checkpoints) / variant),
    ], metrics_artifact)


def evaluate(params: dict, raw_dir: str, features_dir: str, labels_dir: str, world_dir: str, reward_dir: str,
             sft_dir: str, policy_dir: str, click_policy_dir: str, evaluation_dir: str, report_html: str,
             summary_md: str, metrics_artifact: Any) -> str:
    """Evaluate the candidates; the HTML report and Markdown summary become the task's artifacts.
    Returns the gate ('promote' or 'hold') for the pipeline's dsl.If."""
    import json
    import shutil

    from components.evaluate.core import run

    policies = {"sft": Path(sft_dir), "rlhf_click": Path(click_policy_dir), "rlhf_midterm": Path(policy_dir)}
    m = execute("evaluate", _params(params), lambda q: run(q, Path(raw_dir), Path(features_dir), Path(labels_dir),
                Path(world_dir), Path(reward_dir), policies, Path(evaluation_dir), progress=False))
    shutil.copy(Path(evaluation_dir) / "evaluation.html", report_html)
    shutil.copy(Path(evaluation_dir) / "summary.md", summary_md)
    _report(metrics_artifact, m)
    return json.loads((Path(evaluation_dir) / "gate.json").read_text())["gate"]


def register(params: dict, policy_dir: str, reward_dir: str, evaluation_dir: str, metrics_artifact: Any,
             pipeline_run_id: str = "") -> None:
    """Register in MLflow; the champion alias moves only if the gate said promote."""
    from components.paths import project_root
    from components.register.core import run

    record = execute("register", _params(params), lambda q: run(q, Path(policy_dir), Path(reward_dir), Path(evaluation_dir),
                                                                project_root(), pipeline_run_id or None))
    _report(metrics_artifact, {k: float(v) for k, v in record.items() if isinstance(v, (bool, int, float))})
