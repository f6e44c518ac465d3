"""Run a stage the same way from every entry point (CLI, DVC, KFP op).

Loads and validates the params, restricts them to the sections the stage declares (reading
another section is a bug that fails loudly), calls the stage's ``core.run``, writes
``metrics/<stage>.json`` and logs the same numbers to an MLflow run.

The MLflow run is opened only once the stage has succeeded, so a failed stage — a rejected
input above all — leaves nothing in the tracking store: the store holds the runs whose
outputs exist. (A stage that must write to MLflow while it works, ``register``, asks for the
run to be open during the work; if it fails, its run ends as FAILED.)
"""

from __future__ import annotations

import time
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
    run_open_during_stage: bool = False,
) -> dict[str, Any]:
    """Call ``fn(params)``, then record it in an MLflow run; returns (and writes) its metrics.

    ``sections``: the params sections the stage reads (its package's ``SECTIONS``);
    ``overrides``: dotted keys from ``--set``; ``log_outputs`` then logs what the stage
    produced (models, plots) to the same run; ``run_open_during_stage``: open the MLflow run
    before ``fn`` (for a stage that logs to MLflow itself) instead of after it succeeded.
    """
    go_offline()
    full = params if isinstance(params, Params) else load_params(params, overrides, only=sections)
    p = restrict(full, sections, stage)
    declared = tuple(dict.fromkeys([*sections, *ALWAYS_READ]))
    seed = seed_of(p) if seed_of else None

    def record(run: StageRun, metrics: dict[str, Any], seconds: float) -> None:
        run.log_metrics(metrics | {"stage/seconds": seconds})
        if log_outputs is not None and run.active:
            log_outputs(run, p)
        if metrics_path is not None and is_main_process():
            write_json(metrics_path, metrics)
            run.log_artifact(metrics_path)

    started = time.perf_counter()
    if run_open_during_stage:
        with stage_run(stage, p, declared, seed=seed) as run:
            metrics = fn(p)
            record(run, metrics, time.perf_counter() - started)
        return metrics
    metrics = fn(p)  # raises on failure: no run is recorded for it
    with stage_run(stage, p, declared, seed=seed) as run:
        record(run, metrics, time.perf_counter() - started)
    return metrics
