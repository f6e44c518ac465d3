"""MLflow logging for stage runs: one run per stage execution, metrics with stable prefixes.

Stages do not import MLflow themselves; their entry points (CLI, KFP op) wrap ``core.run``
in :func:`stage_run`. Import is lazy so ``--help`` stays instant.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.params import Params, TrackingParams

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
}


def tracking_uri(tp: TrackingParams) -> str:
    """Where runs and models go: ``MLFLOW_TRACKING_URI`` (set by a cluster or a test) wins over params."""
    return os.environ.get("MLFLOW_TRACKING_URI", tp.uri)


def go_offline() -> None:
    """Keep libraries from phoning home (air-gapped clusters; slow and wrong otherwise)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


class StageRun:
    """Handle given to the caller of :func:`stage_run`: log metrics, artifacts, tags."""

    def __init__(self, active: bool):
        self.active = active

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if not self.active:
            return
        import mlflow

        numeric = {k: float(v) for k, v in _flatten(metrics).items() if _is_number(v)}
        if numeric:
            mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | Path) -> None:
        if self.active and Path(path).exists():
            import mlflow

            mlflow.log_artifact(str(path))

    def log_curve(self, rows: list[dict[str, float]], prefix: str) -> None:
        """A training curve as step-wise metrics (``prefix/<column>``). Empty cells (e.g. the true
        value on real logs, where there is no world) are skipped, never cast."""
        if not self.active:
            return
        import mlflow

        for row in rows:
            step = int(row["step"])
            mlflow.log_metrics(
                {f"{prefix}/{k}": float(v) for k, v in row.items() if k != "step" and _is_number(v)},
                step=step,
            )


@contextmanager
def stage_run(
    stage: str, params: Params, sections: Sequence[str], seed: int | None = None
) -> Iterator[StageRun]:
    """An MLflow run named ``{stage}__{seed}__{time}`` (CleanRL style), logging the sections the
    stage reads."""
    go_offline()
    cfg = params.tracking
    if not cfg.enabled or not is_main_process():
        yield StageRun(active=False)
        return
    import logging

    import mlflow

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(cfg))
    mlflow.set_experiment(cfg.experiment)
    name = f"{stage}__{seed if seed is not None else 'na'}__{int(time.time())}"
    with mlflow.start_run(run_name=name):
        mlflow.set_tags({"encore.stage": stage, "encore.params_hash": params.section_hash(*sections)})
        flat = _flatten(params.sections_dump(*sections))
        mlflow.log_params({k[:250]: str(v)[:500] for k, v in flat.items()})
        yield StageRun(active=True)


def is_main_process() -> bool:
    """False in the extra workers of a multi-process ``accelerate launch`` (they must not log or write)."""
    return os.environ.get("RANK", "0") == "0"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}/"))
        else:
            out[key] = v
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
