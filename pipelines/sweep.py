"""The robustness suite under DVC: ``dvc repro`` once per (world, seed), one table at the end.

``python -m pipelines.sweep`` (``make robustness``) gives each run of the suite a workspace of its
own, ``<robustness.out_dir>/runs/<world>-s<seed>/``: a copy of the project's code and pipeline
(``dvc.yaml``, ``components/``, ``feature_repo/``, ...) with a ``params.yaml`` that is the project's
own except for the world's ``simulate`` keys and the seed, and its own MLflow store and registry
(one world's gate never moves another's champion). Each workspace is an ordinary DVC project:
``cd`` into it and ``dvc metrics show``, ``dvc repro``, ``dvc exp run -S ...`` all work.

The project's files are read once, when the suite starts: every run of one suite gets the same
code and pipeline, whatever is edited in the checkout meanwhile. Re-running the suite refreshes
each workspace's code and re-runs ``dvc repro`` there, so only what a change made stale runs
again, and a killed suite resumes where it stopped. Each run starts with an empty registry (the
workspace's MLflow store is cleared first): every suite run's gate decides against the logging
policy, never against a champion an earlier suite run promoted, which would make the table's
decisions depend on the workspace's history. A run that fails is recorded as failed (its
``repro.log`` named) and the others still run; the command exits non-zero if any failed. The
table (``robustness.json``, ``robustness.md``, ``robustness.png`` in ``out_dir``) is written from
every run that finished, and its numbers are logged to the project's MLflow store.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import typer
import yaml

from components.cli import app, params_option, set_option, user_errors
from components.cli import overrides as parse_overrides
from components.errors import EncoreError
from components.params import load_params
from components.robustness.settings import SuiteRun, run_params, set_dotted, suite_runs
from components.robustness.table import RunRow, row_from_metrics, write

ROOT = Path(__file__).resolve().parents[1]
# What a run's workspace does not need: tests, docs, benchmarks, deployment files, the default
# run's lock file (each workspace's own dvc.lock is written by its own runs).
NOT_COPIED = ("tests/", "benchmarks/", "docs/", "docker/", "k8s/", ".ci/", "dvc.lock")
RUNS = "runs"
LOG = "repro.log"

cli = app(__doc__.split("\n\n")[0])


def project_files(root: Path = ROOT) -> list[str]:
    """The project's files as a clone has them (tracked or not ignored), minus :data:`NOT_COPIED`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    return [rel for rel in listed if rel and (root / rel).is_file() and not rel.startswith(NOT_COPIED)]


def snapshot(root: Path = ROOT) -> dict[str, tuple[bytes, int]]:
    """The project's files as they are now: path -> (content, mode). About a megabyte."""
    return {rel: ((root / rel).read_bytes(), (root / rel).stat().st_mode) for rel in project_files(root)}


def prepare_workspace(ws: Path, files: dict[str, tuple[bytes, int]], params: dict) -> None:
    """Create or refresh ``ws``: the snapshot's files (written only where they differ, so DVC sees
    exactly what changed), this run's params.yaml, and a git repository of its own."""
    for rel, (content, mode) in files.items():
        dst = ws / rel
        if not dst.exists() or dst.read_bytes() != content:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(content)
            dst.chmod(mode)
    text = yaml.safe_dump(params, sort_keys=False)
    target = ws / "params.yaml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    if not (ws / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    clear_registry(ws)


def clear_registry(ws: Path) -> None:
    """Remove the workspace's MLflow store (runs, registry, artifacts) so the run starts with no
    champion; DVC's ``champion`` stage then sees the change and evaluate and register rerun."""
    import shutil

    for name in ("mlflow.db", "mlruns", "mlartifacts"):
        path = ws / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def repro(ws: Path, target: str | None, progress: bool, label: str) -> bool:
    """``dvc repro [target]`` in ``ws``, its output in ``ws/repro.log``; a bar counts the stages
    run or found unchanged, naming the current one."""
    from tqdm.auto import tqdm

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    python = str(Path(sys.executable).absolute())  # run from a relative PATH entry, it is relative
    env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    cmd = [python, "-m", "dvc", "repro", *([target] if target else [])]
    stages = len(yaml.safe_load((ws / "dvc.yaml").read_text())["stages"])
    with (
        open(ws / LOG, "a") as log,
        tqdm(desc=label, total=stages, unit="stage", disable=not progress) as bar,
    ):
        log.write(f"\n$ {' '.join(cmd[1:])}  # {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if m := re.match(r"(?:Running stage|Stage) '(\w+)'", line):  # ran, or unchanged
                bar.set_postfix_str(m.group(1))
                bar.update()
        return proc.wait() == 0


def run_suite(
    params_path: Path,
    out_dir: Path | None = None,
    worlds: list[str] | None = None,
    target: str | None = None,
    overrides: dict | None = None,
    progress: bool = True,
) -> tuple[list[RunRow], dict[str, float] | None]:
    """Run every (world, seed) of the suite (or the named worlds); returns the rows and, when the
    whole DAG ran (no ``target``), the table's summary."""
    params = load_params(params_path, overrides)
    raw = yaml.safe_load(params_path.read_text())
    set_dotted(raw, overrides or {})
    runs = suite_runs(params)
    if worlds:
        unknown = sorted(set(worlds) - {r.world.name for r in runs})
        if unknown:
            raise EncoreError(
                f"{params_path}: no world named {unknown} in robustness.worlds "
                f"({', '.join(w.name for w in params.robustness.worlds)})"
            )
        runs = [r for r in runs if r.world.name in worlds]
    out_dir = Path(out_dir or params.robustness.out_dir)
    files = snapshot()
    rows: list[RunRow] = []
    for i, run in enumerate(runs, 1):
        ws = (out_dir / RUNS / run.name).resolve()
        prepare_workspace(ws, files, run_params(raw, run, tracking_uri="sqlite:///mlflow.db"))
        started = time.perf_counter()
        ok = repro(ws, target, progress, f"[{i}/{len(runs)}] {run.name}")
        rows.append(_row(run, ws, ok, time.perf_counter() - started, target))
    if target is not None:
        return rows, None
    totals = write(rows, out_dir)
    _log_to_mlflow(params, rows, totals, out_dir)
    return rows, totals


def _row(run: SuiteRun, ws: Path, ok: bool, seconds: float, target: str | None) -> RunRow:
    common = dict(run=run.name, world=run.world.name, seed=run.seed, mechanism=run.world.mechanism)
    if not ok:
        return RunRow(**common, status="failed", wall_s=seconds, log=str(ws / LOG))
    if target is not None:
        return RunRow(**common, status=f"ran to {target}", wall_s=seconds, log=str(ws / LOG))
    metrics = json.loads((ws / "metrics" / "evaluate.json").read_text())
    return row_from_metrics(**common, wall_s=seconds, metrics=metrics)


def _log_to_mlflow(params, rows: list[RunRow], totals: dict[str, float], out_dir: Path) -> None:
    """The suite as one MLflow run of the project's store: the summary, per-run lifts, the table."""
    from components.tracking import stage_run

    with stage_run("robustness", params, ("robustness", "simulate")) as run:
        run.log_metrics({f"suite/{k}": v for k, v in totals.items()})
        for r in rows:
            if r.status != "ok":
                continue
            for arm, iv in r.lift_vs_logging.items():
                run.log_metrics({f"{r.run}/lift_vs_logging/{arm}": iv.estimate})
            run.log_metrics({f"{r.run}/gate_right": float(bool(r.gate_right))})
        for name in ("robustness.json", "robustness.md", "robustness.png"):
            run.log_artifact(out_dir / name)


@cli.command()
def main(
    params: Path = params_option(),
    out_dir: Path = typer.Option(None, help="default: robustness.out_dir"),
    world: list[str] = typer.Option([], "--world", "-w", help="run only this world (repeatable)"),
    target: str = typer.Option(
        None, help="run each workspace's DAG only up to this stage (no table), e.g. --target signals"
    ),
    set_: list[str] = set_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Run the robustness suite and write its table."""
    with user_errors("robustness"):
        rows, totals = run_suite(params, out_dir, world or None, target, parse_overrides(set_), progress)
    failed = [r for r in rows if r.status == "failed"]
    if totals is not None:
        where = Path(out_dir or load_params(params).robustness.out_dir)
        print((where / "robustness.md").read_text())
    for r in failed:
        print(f"run {r.run} failed: see {r.log}", file=sys.stderr)
    if failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    cli()
