"""Policy-service latency and throughput: the real server, the real Redis, real HTTP.

Sets up what a deployment has, at the default model size, in a scratch folder:

- a world with the default catalogue (3,000 tracks) and ``--users`` listeners, its features
  materialised into the local Redis (``features.store: redis``, a unique project, removed after);
- the policy: ``--policy-dir`` (e.g. ``models/policy`` after ``make repro``) or, by default, an
  untrained policy of the default architecture and vocabulary (``sft_policy`` params: speed does
  not depend on the weights), registered in a scratch MLflow (SQLite) as champion and challenger;
- ``python -m components.serve`` with the params.yaml ``serve`` section as it is (micro-batching,
  ε-exploration, impression logging on).

Then drives ``POST /slate`` (a known listener, 20 recent plays) at each ``--concurrency`` for
``--seconds`` after a warm-up, from an aiohttp client in this process (which shares the CPUs),
and reports p50/p99 latency and slates/s. Writes benchmarks/results/serve_latency.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import tempfile
import time
import uuid
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
TARGETS = {"p99_ms_at_1": 25.0, "slates_per_second_at_32": 1000.0}


@app.command()
def main(
    concurrency: list[int] = typer.Option([1, 8, 32], help="concurrent clients (repeatable)"),
    seconds: float = typer.Option(15.0, help="measured seconds per concurrency"),
    warmup: float = typer.Option(3.0, help="unmeasured seconds before each measurement"),
    users: int = typer.Option(2000, help="listeners in the benchmark world"),
    policy_dir: Path | None = typer.Option(
        None, help="a trained policy folder; default: untrained, default size"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="params file (serve, sft_policy, simulate)"),
    decoding: str = typer.Option(
        "", help="serve.decoding for this run (sample | rank; rank needs a --policy-dir carrying ranker/)"
    ),
    out: Path = typer.Option(Path("benchmarks/results/serve_latency.json"), help="result file"),
) -> None:

    from components.params import load_params
    from tests.serve.helpers import Server, register, write_params

    base = load_params(params)
    project = f"encore_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as scratch:
        s = Path(scratch)
        t = time.perf_counter()
        store, known = _world(s, project, users, params)
        policy = policy_dir or _untrained_policy(s, base, params)
        uri = f"sqlite:///{s / 'mlflow.db'}"
        register(uri, "encore-policy", policy, s / "artifacts", ("champion", "challenger"))
        setup_s = time.perf_counter() - t
        bench_params = write_params(
            s / "params.yaml",
            {
                "tracking.enabled": False,
                "features.store": "redis",
                "features.project": project,
                **({"serve.decoding": decoding} if decoding else {}),
            },
        )
        server = Server(bench_params, s / "features", s / "served", uri, s)
        try:
            server.wait_ready()
            runs = [asyncio.run(_drive(server.url, c, seconds, warmup, known)) for c in concurrency]
        finally:
            rc = server.terminate()
            store.teardown()
        parts = sum(1 for _ in (s / "served" / "impressions").glob("part-*.parquet"))

    by_c = {r["concurrency"]: r for r in runs}
    result = {
        "cpu": f"{os.cpu_count()} cores ({platform.machine()})",
        "load_average_1m_at_end": os.getloadavg()[0],
        "policy": str(policy_dir)
        if policy_dir
        else "untrained, default size (sft_policy.model, 3,000-track vocabulary)",
        "serve": base.serve.model_dump(mode="json") | ({"decoding": decoding} if decoding else {}),
        "setup_seconds": round(setup_s, 1),
        "server_exit_code": rc,
        "impression_log_parts_written": parts,
        "runs": runs,
        "targets": {
            "p99_ms_at_concurrency_1": {
                "target": f"<= {TARGETS['p99_ms_at_1']}",
                "reached": by_c.get(1, {}).get("p99_ms"),
            },
            "slates_per_second_at_concurrency_32": {
                "target": f">= {TARGETS['slates_per_second_at_32']}",
                "reached": by_c.get(32, {}).get("slates_per_second"),
            },
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _world(root: Path, project: str, n_users: int, params: Path):
    """A default-catalogue world of ``n_users`` listeners, features in Redis: (store, known user ids)."""
    import polars as pl

    from components.features.core import run as features
    from components.featurestore.store import open_store, repo_config
    from components.params import load_params
    from components.raw_logs.simulate import simulate

    p = load_params(
        params,
        {
            "tracking.enabled": False,
            "simulate.users.n_users": n_users,
            "simulate.warmup_days": 7,
            "simulate.days": 21,
            "features.store": "redis",
            "features.project": project,
        },
    )
    simulate(p, root / "raw", root / "world", progress=False)
    features(p, root / "raw", root / "features")
    snapshots = pl.read_parquet(root / "features" / "sources" / "user_activity.parquet")
    return open_store(repo_config(p.features, root / "features" / "feast")), snapshots[
        "user_id"
    ].unique().to_list()


def _untrained_policy(root: Path, p, params: Path) -> Path:
    """A policy of the default architecture over the default catalogue, weights as initialised."""
    import polars as pl

    from components.policy.model import build
    from components.policy.vocab import ItemVocab

    sp = p.sft_policy
    snapshots = pl.read_parquet(root / "features" / "sources" / "user_activity.parquet")
    track_ids = pl.read_parquet(root / "raw" / "tracks.parquet")["track_id"].to_list()
    vocab = ItemVocab.fit(
        snapshots, sp.prompt_features, track_ids, sp.history_length, sp.slate_size, sp.feature_buckets
    )
    model, tokenizer = build(vocab, sp.model, sp.base_model, sp.seed)
    out = root / "policy"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    vocab.save(out)
    return out


async def _drive(url: str, concurrency: int, seconds: float, warmup: float, users: list[int]) -> dict:
    """``concurrency`` clients posting slates back to back; latencies of the measured window."""
    import aiohttp

    rng = random.Random(concurrency)
    latencies: list[float] = []
    errors = 0
    measuring = False
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(stop: float) -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                body = {"user_id": rng.choice(users), "history": rng.sample(range(3000), 20)}
                t = time.perf_counter()
                async with session.post(f"{url}/slate", json=body) as resp:
                    await resp.read()
                    ok = resp.status == 200
                if measuring:
                    latencies.append(time.perf_counter() - t)
                    errors += not ok

        await asyncio.gather(*(client(time.perf_counter() + warmup) for _ in range(concurrency)))
        measuring = True
        t0 = time.perf_counter()
        await asyncio.gather(*(client(t0 + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "slates_per_second": round(len(latencies) / elapsed, 1),
    }


if __name__ == "__main__":
    app()
