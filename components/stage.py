"""Run a stage the same way from every entry point (CLI, DVC, KFP op).

Loads and validates the params, restricts them to the sections the stage declares (reading
another section is a bug that fails loudly), opens an MLflow run, calls the stage's
``core.run``, writes ``metrics/<stage>.json`` and logs the same numbers to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from components.io import write_json
from components.params import ALWAYS_READ, Params, load_params, restrict
from components.tracking import StageRun, go_offline, is_main_process, stage_run


def execute(
    stage: str,
    sections: Sequence[str],
    params: Path | Params,
    fn: Callable[[Params], dict[str, Any]],
    metrics_path: Path | None = None,
    seed_of: Callable[[Params], int] | None = None,
    log_outputs: Callable[[StageRun, Params], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Call ``fn(params)`` inside an MLflow run; returns (and writes) its metrics.

    ``sections``: the params sections the stage reads (its package's ``SECTIONS``);
    ``overrides``: dotted keys from ``--set``; ``log_outputs`` then logs what the stage
    produced (models, plots) to the same run.
    """
    go_offline()
    full = params if isinstance(params, Params) else load_params(params, overrides, only=sections)
    p = restrict(full, sections, stage)
    declared = tuple(dict.fromkeys([*sections, *ALWAYS_READ]))
    with stage_run(stage, p, declared, seed=seed_of(p) if seed_of else None) as run:
        metrics = fn(p)
        run.log_metrics(metrics)
        if log_outputs is not None and run.active:
            log_outputs(run, p)
        if metrics_path is not None and is_main_process():
            write_json(metrics_path, metrics)
            run.log_artifact(metrics_path)
    return metrics
