"""Stage ``simulate``/``ingest``: the raw logs, from the world or from a folder of real logs."""

from __future__ import annotations

from pathlib import Path

from components.params import Params


def stage_name(params: Params) -> str:
    """``simulate`` or ``ingest``: the MLflow run and the metrics say which one ran."""
    return "simulate" if params.source.kind == "world" else "ingest"


def run(params: Params, raw_dir: Path, world_dir: Path, progress: bool = True) -> dict[str, float]:
    """Write the four contract tables + ``manifest.json`` into ``raw_dir`` and the truth (or a
    note that none exists) into ``world_dir``; return the run's metrics."""
    if params.source.kind == "world":
        from components.raw_logs.simulate import simulate

        return simulate(params, Path(raw_dir), Path(world_dir), progress)
    from components.raw_logs.ingest import ingest

    return ingest(params, Path(params.source.logs_dir), Path(raw_dir), Path(world_dir), progress)
