"""World throughput: impressions simulated per second for 100k users x 28 days.

Two figures: the simulation alone (``world.step``), and simulation plus writing the
raw-log parquet files (what ``simulate`` does). Setup (catalogue, population, the logging
policy's candidate retrieval) is timed apart. Writes ``benchmarks/results/world_throughput.json``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    n_users: int = typer.Option(100_000, help="listeners"),
    days: int = typer.Option(28, help="simulated days"),
    params: Path = typer.Option(Path("params.yaml"), help="base params (simulate section)"),
    out: Path = typer.Option(Path("benchmarks/results/world_throughput.json"), help="result file"),
) -> None:
    from tqdm.auto import tqdm

    from components.params import load_params
    from components.world import LoggingPolicy, World
    from components.world.logs import RawLogWriter

    p = load_params(params, {"simulate.users.n_users": n_users, "simulate.days": days}).simulate
    result: dict = {
        "n_users": n_users,
        "days": days,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
    }

    t = time.perf_counter()
    base = World.create(p)
    policy = LoggingPolicy(p.logging_policy, base.catalogue, base.population, p.seed)
    result["setup_seconds"] = time.perf_counter() - t

    for label, write in (("simulate_only", False), ("simulate_and_write", True)):
        world = base.clone()
        with tempfile.TemporaryDirectory() as tmp:
            writer = RawLogWriter(Path(tmp), p.start_date, world.catalogue) if write else None
            n, t = 0, time.perf_counter()
            for day in tqdm(range(days), desc=label, unit="day"):
                ev = world.step(day, policy)
                n += ev.n_impressions
                if writer:
                    writer.write_day(ev)
            if writer:
                writer.close()
            seconds = time.perf_counter() - t
        result[label] = {"impressions": n, "seconds": seconds, "impressions_per_second": n / seconds}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
