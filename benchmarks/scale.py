"""Scale on one machine: peak memory and wall time of each data stage, at 1x and 10x the default
world and on sparse ids.

Each run simulates a world (``simulate.users.n_users`` x ``--scale``; cached under
``benchmarks/.cache/scale``), then treats it as real logs: ``ingest`` -> ``label`` -> ``features``
-> reward-model data prep, each the real stage function in a fresh subprocess, so a stage's peak
resident memory is its own (``os.wait4``'s ``ru_maxrss``) and its wall time includes start-up.
``--sparse`` runs the 1x logs with every id respelled sparsely (listeners ``id * 2000 + 7``: max
id ~2e7 for 10k listeners, like a warehouse's surrogate keys).

Reward-model data prep = what the ``reward_model`` stage does before training: the composite
reward on the labels (the fixed weights of ``label.composite.fixed``: no signals stage runs
here, and no experiment library), the user x time split
(:func:`components.reward.examples.load_split`) and the encoder's fit and encoding of both sides.

A watchdog kills a stage whose resident memory passes ``--memory-limit-gb`` or that leaves the
machine under ``--reserve-gb`` available, and records it. Writes ``benchmarks/results/scale.json``
(runs not asked for this time are kept from the previous file).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
CACHE = Path("benchmarks/.cache/scale")
RESULT = Path("benchmarks/results/scale.json")
STAGES = ("ingest", "label", "features", "reward_model_prep")
# sparse spelling: id -> id * k + OFFSET (max listener id ~2e7 at the default 10k listeners)
SPARSE = {"user_id": 2000, "track_id": 1000, "artist_id": 1000, "session_id": 50, "event_id": 5}
OFFSET = 7
GB = 1024**3


def _params(run_dir: Path, n_users: int):
    from components.params import load_params

    return load_params(
        "params.yaml",
        {
            "simulate.users.n_users": n_users,
            "tracking.enabled": False,
            "source.kind": "logs",
            "source.logs_dir": str(run_dir / "logs"),
        },
    )


# --- the stages, as run inside a fresh subprocess -------------------------------------------


def _simulate(run_dir: Path, n_users: int) -> dict:
    from components.params import load_params
    from components.raw_logs.simulate import simulate

    p = load_params("params.yaml", {"simulate.users.n_users": n_users, "tracking.enabled": False})
    tmp = run_dir / "simulated"
    simulate(p, tmp / "raw", tmp / "world", progress=False)
    (tmp / "raw").rename(run_dir / "logs")
    shutil.rmtree(tmp)  # the truth is not needed: these logs are ingested as if real
    return {}


def _respell(run_dir: Path, n_users: int) -> dict:
    """The 1x logs with sparse ids, streamed table by table, batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dense, out = run_dir.parent / "1x" / "logs", run_dir / "logs.tmp"
    out.mkdir(parents=True, exist_ok=True)
    for path in dense.glob("*.parquet"):
        with pq.ParquetFile(path) as src, pq.ParquetWriter(out / path.name, src.schema_arrow) as dst:
            for batch in src.iter_batches(batch_size=1 << 20):
                table = pa.Table.from_batches([batch])
                for col, k in SPARSE.items():
                    if col in table.column_names:
                        spelled = pc.add(pc.multiply(table[col], k), OFFSET)
                        table = table.set_column(table.column_names.index(col), col, spelled)
                dst.write_table(table.cast(src.schema_arrow))
    shutil.copy(dense / "manifest.json", out / "manifest.json")
    out.rename(run_dir / "logs")
    return {}


def _ingest(run_dir: Path, n_users: int) -> dict:
    from components.raw_logs.core import run

    return run(_params(run_dir, n_users), run_dir / "raw", run_dir / "world", progress=False)


def _label(run_dir: Path, n_users: int) -> dict:
    from components.label.core import run

    return run(_params(run_dir, n_users), run_dir / "raw", run_dir / "labels")


def _features(run_dir: Path, n_users: int) -> dict:
    from components.features.core import run

    return run(_params(run_dir, n_users), run_dir / "raw", run_dir / "features")


def _reward_model_prep(run_dir: Path, n_users: int) -> dict:
    import polars as pl

    from components import contract
    from components.reward import examples as D
    from components.reward.composite import fixed_weights
    from components.reward.tokens import Encoder

    p = _params(run_dir, n_users)
    rp, lp = p.reward_model, p.label
    weights = fixed_weights(lp.composite.fixed, lp)
    parts = D.load_split(run_dir / "features", run_dir / "labels", rp.targets.midterm, weights, rp)
    tracks = pl.from_arrow(contract.read(run_dir / "raw", "tracks", ["track_id", "artist_id", "genre_id"]))
    user_f, cand_f = D.feature_lists(p.features)
    encoder = Encoder.fit(
        parts.train, user_f, cand_f, tracks, rp.history_length, rp.n_buckets, D.genre_mix_feature(p.features)
    )
    x_train, x_test = encoder.encode(parts.train), encoder.encode(parts.test)
    return {"train/examples": len(x_train), "train/test_examples": len(x_test)}


STEP = "_step"  # argv[1] of the child process that runs one step
STEPS = {
    "simulate": _simulate,
    "respell": _respell,
    "ingest": _ingest,
    "label": _label,
    "features": _features,
    "reward_model_prep": _reward_model_prep,
}


def step(name: str, run_dir: Path, n_users: int) -> None:
    """One step in this (fresh) process; its metrics go to ``run_dir/<name>.json``."""
    metrics = STEPS[name](run_dir, n_users)
    (run_dir / f"{name}.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")


# --- the driver -------------------------------------------------------------------------------


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _measure(name: str, run_dir: Path, n_users: int, limit_gb: float, reserve_gb: float) -> dict:
    """Run one step in a fresh subprocess: wall seconds, peak RSS (the kernel's high-water mark),
    and why it was killed, if it was."""
    cmd = [sys.executable, "-m", "benchmarks.scale", STEP, name, str(run_dir), str(n_users)]
    started = time.perf_counter()
    child = subprocess.Popen(cmd)
    killed: list[str] = []

    def watch() -> None:
        while child.poll() is None:
            rss, free = _rss_bytes(child.pid), _available_bytes()
            if rss > limit_gb * GB or free < reserve_gb * GB:
                killed.append(f"killed at {rss / GB:.1f} GB RSS ({free / GB:.1f} GB left on the machine)")
                child.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    result = {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 2),  # ru_maxrss is in KiB on Linux
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
    }
    if killed or child.returncode:
        result["failed"] = killed[0] if killed else f"exit code {child.returncode}"
    print(f"  {name}: {result}", flush=True)
    return result


def _rows(logs: Path) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = {}
    for table in ("impressions", "plays", "users", "tracks"):
        out[table] = pq.ParquetFile(logs / f"{table}.parquet").metadata.num_rows
    users = pq.read_table(logs / "users.parquet", columns=["user_id"])["user_id"]
    out["max_user_id"] = pc.max(users).as_py()
    return out


@app.command()
def main(
    scale: list[int] = typer.Option([], help="world sizes to run (x the default listeners); repeatable"),
    sparse: bool = typer.Option(False, help="run the 1x logs with sparse ids"),
    memory_limit_gb: float = typer.Option(20.0, help="kill a stage above this resident memory"),
    reserve_gb: float = typer.Option(1.5, help="kill a stage that leaves the machine less than this"),
    keep: bool = typer.Option(False, help="keep each run's stage outputs (raw, labels, features)"),
    out: Path = typer.Option(RESULT, help="result file (runs not asked for are kept from it)"),
) -> None:
    """Run the asked-for worlds (all three when none is asked for) and record every stage."""
    from components.params import load_params

    if not scale and not sparse:
        scale, sparse = [1, 10], True
    base_users = load_params("params.yaml").simulate.users.n_users
    runs = [(f"{s}x", s, None) for s in scale] + ([("1x_sparse", 1, "respell")] if sparse else [])
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update({"cpu_count": os.cpu_count(), "machine": platform.machine(), "target_peak_rss_gb": 16})
    result.setdefault("runs", {})
    for name, factor, make in runs:
        n_users = base_users * factor
        run_dir = CACHE / name
        print(f"{name}: {n_users:,} listeners", flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        if make == "respell" and not (CACHE / "1x" / "logs" / "manifest.json").exists():
            (CACHE / "1x").mkdir(parents=True, exist_ok=True)
            _measure("simulate", CACHE / "1x", base_users, memory_limit_gb, reserve_gb)
        made = None
        if not (run_dir / "logs" / "manifest.json").exists():
            shutil.rmtree(run_dir / "logs", ignore_errors=True)
            made = _measure(make or "simulate", run_dir, n_users, memory_limit_gb, reserve_gb)
            if "failed" in made:
                raise SystemExit(f"{name}: could not make its logs ({made['failed']})")
        for stale in ("raw", "world", "labels", "features"):
            shutil.rmtree(run_dir / stale, ignore_errors=True)
        record = {"n_users": n_users, "rows": _rows(run_dir / "logs"), "stages": {}}
        if made:  # how the logs were made (not a pipeline stage: the logs stand in for real ones)
            record["logs_made_by"] = {make or "simulate": made}
        for stage in STAGES:
            record["stages"][stage] = _measure(stage, run_dir, n_users, memory_limit_gb, reserve_gb)
            if "failed" in record["stages"][stage]:
                break
        record["max_peak_rss_gb"] = max(s["peak_rss_gb"] for s in record["stages"].values())
        record["meets_target"] = all(
            "failed" not in s and s["peak_rss_gb"] <= 16 for s in record["stages"].values()
        ) and len(record["stages"]) == len(STAGES)
        result["runs"][name] = record
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        if not keep:
            for stale in ("raw", "world", "labels", "features"):
                shutil.rmtree(run_dir / stale, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == [STEP]:
        step(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        app()
