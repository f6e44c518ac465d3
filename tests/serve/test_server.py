"""Integration: the real service (uvicorn subprocess) on the real Redis online store, with tiny
trained policies registered in a real MLflow registry (SQLite). No mocks.

One server for the module; the tests run in file order and the last one stops it with SIGTERM,
then checks that every served slate reached the log and that the exported logs pass
``components.validate`` and ``source.kind: logs`` ingest."""

from __future__ import annotations

import random
import signal
import uuid
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from components.policy.decoding import slot_probabilities
from components.policy.model import load
from components.sampler import sampling
from components.sequences import right_aligned
from components.serve import core
from tests.conftest import tiny_params
from tests.serve.helpers import Server, perturbed, register, write_params
from tests.service_checks import require

pytestmark = pytest.mark.integration

MODEL = "encore-policy-test"
TEMPERATURE, EPSILON = 0.8, 0.2
ARMS = [
    {"name": "control", "alias": "champion", "share": 0.7},
    {"name": "treatment", "alias": "challenger", "share": 0.3},
]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_raw, tiny_sft):
    """Redis features under a unique project, two registered versions (1 = champion, 2 =
    challenger), a params file for the service."""
    require("127.0.0.1", 6379, "Redis")
    from components.features.core import run as features
    from components.featurestore.store import open_store, repo_config

    root = tmp_path_factory.mktemp("serve")
    project = f"encore_serve_{uuid.uuid4().hex[:8]}"
    fparams = tiny_params(
        features__store="redis", features__redis_connection="127.0.0.1:6379", features__project=project
    )
    features(fparams, tiny_raw, root / "features")
    store = open_store(repo_config(fparams.features, root / "features" / "feast"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    dirs = {1: tiny_sft[0], 2: perturbed(tiny_sft[0], root / "v2", seed=5)}
    assert register(uri, MODEL, dirs[1], root / "artifacts", ("champion",)) == 1
    assert register(uri, MODEL, dirs[2], root / "artifacts", ("challenger",)) == 2
    params = write_params(
        root / "params.yaml",
        {
            "tracking.enabled": False,
            "features.store": "redis",
            "features.project": project,
            "register.policy_model": MODEL,
            "serve.temperature": TEMPERATURE,
            "serve.epsilon": EPSILON,
            "serve.poll_seconds": 0.5,
            "serve.log.flush_seconds": 600.0,  # only SIGTERM writes: nothing may be lost on the way
            "serve.experiment.arms": ARMS,
        },
    )
    yield {"root": root, "store": store, "uri": uri, "params": params, "dirs": dirs, "raw": tiny_raw}
    store.teardown()


@pytest.fixture(scope="module")
def server(world):
    s = Server(
        world["params"], world["root"] / "features", world["root"] / "served", world["uri"], world["root"]
    )
    s.served = 0  # slates answered with 200, to compare with the log
    s.feedback = 0
    try:
        s.wait_ready()
        yield s
    finally:
        s.terminate()


def slate(server: Server, body: dict) -> dict:
    status, out = server.request("POST", "/slate", body)
    assert status == 200, out
    server.served += 1
    return out


def test_health_readiness_metrics_and_bad_requests(server):
    assert server.request("GET", "/healthz") == (200, {"status": "ok"})
    status, ready = server.request("GET", "/readyz")
    assert status == 200 and ready["aliases"] == {"champion": 1, "challenger": 2}
    status, err = server.request("POST", "/slate", {"user_id": 3, "history": [1, "two", 3]})
    assert status == 422 and "history.1" in err["error"]
    status, err = server.request("POST", "/slate", {"user_id": -1})
    assert status == 422 and "user_id" in err["error"]
    status, err = server.request("POST", "/slate", {"user": 3})
    assert status == 422 and "user_id" in err["error"]
    status, err = server.request("POST", "/slate", {"user_id": 3, "history": list(range(501))})
    assert status == 422 and "history" in err["error"] and "500" in err["error"]
    status, err = server.request(
        "POST", "/feedback", {"request_id": "0" * 32, "position": 0, "ms_played": 45_000, "skipped": True}
    )
    assert status == 422 and "skip" in err["error"]
    cold = slate(server, {"user_id": 10**12})  # unknown listener: cold start, not an error
    assert cold["cold_start"] and len(set(cold["tracks"])) == len(cold["tracks"])
    status, text = server.request("GET", "/metrics")
    assert status == 200 and "encore_serve_slates_total" in text and "encore_serve_errors_total" in text


def _expected(world, responses: list[dict], histories: list[list[int] | None]) -> np.ndarray:
    """The propensities recomputed offline: π_T from ``slot_probabilities`` on the policy folder
    of the version that served, mixed with ε-uniform over the allowed tracks."""
    from components.featurestore.store import online

    out = np.empty((len(responses), len(responses[0]["tracks"])))
    for version, folder in world["dirs"].items():
        idx = [i for i, r in enumerate(responses) if r["policy_version"] == version]
        if not idx:
            continue
        model, _, vocab = load(folder, device="cpu")
        users = [responses[i]["user_id"] for i in idx]
        feats = online(world["store"], pl.DataFrame({"user_id": users}), "policy", datetime.now(timezone.utc))
        stored = feats["recent_tracks"].to_list()
        lists = [histories[i] if histories[i] is not None else (stored[j] or []) for j, i in enumerate(idx)]
        hist = right_aligned(pl.Series(lists, dtype=pl.List(pl.Int64)), vocab.history_length)
        prompts = vocab.prompts(feats.select(vocab.features), hist)
        slates = np.array([responses[i]["tracks"] for i in idx])
        pi = slot_probabilities(model, vocab, prompts, slates, temperature=TEMPERATURE)
        out[idx] = (1 - EPSILON) * pi + EPSILON / sampling.allowed_counts(vocab, prompts)
        # valid slates: k distinct catalogue tracks, none of them in the history it was given
        assert all(
            len(set(s)) == vocab.slate_size and set(s) <= set(vocab.track_ids) for s in slates.tolist()
        )
        assert all(not set(s) & set(h.tolist()) for s, h in zip(slates.tolist(), hist))
    return out


def test_slates_are_valid_and_propensities_are_the_policys_own(server, world):
    rng = random.Random(0)
    histories = [rng.sample(range(300), rng.randint(0, 25)) if i % 3 else None for i in range(120)]
    users = [rng.randrange(400) for _ in histories]
    responses = [
        slate(server, {"user_id": u} | ({"history": h} if h is not None else {}))
        for u, h in zip(users, histories)
    ]
    assert {r["policy_version"] for r in responses} == {1, 2}
    for r in responses:
        arm = 0 if r["arm"] == "control" else 1
        assert r["policy_id"] == core.policy_id(1, arm, r["policy_version"])
        assert len(r["request_id"]) == 32 and r["served_at"].endswith("Z")
    served = np.array([r["propensities"] for r in responses])
    assert ((served > 0) & (served <= 1)).all()
    np.testing.assert_allclose(served, _expected(world, responses, histories), rtol=1e-4, atol=1e-9)


def test_arms_are_stable_and_near_their_shares(server):
    users = list(range(5000, 5300))
    first = {u: slate(server, {"user_id": u, "history": [1, 2]})["arm"] for u in users}
    again = {u: slate(server, {"user_id": u})["arm"] for u in users[:60]}
    assert all(again[u] == first[u] for u in again)
    treated = sum(a == "treatment" for a in first.values()) / len(users)
    assert abs(treated - 0.3) < 4 * (0.3 * 0.7 / len(users)) ** 0.5
    assert all(
        r["alias"] == ("champion" if r["arm"] == "control" else "challenger")
        for r in [slate(server, {"user_id": 7})]
    )


def test_feedback_is_accepted(server):
    for i in range(20):
        r = slate(server, {"user_id": i, "history": [5, 6, 7]})
        outcome = (
            {"ms_played": 45_000, "saved": i % 4 == 0} if i % 2 else {"ms_played": 4_000, "skipped": True}
        )
        status, body = server.request(
            "POST", "/feedback", {"request_id": r["request_id"], "position": i % 10} | outcome
        )
        assert status == 202 and body == {"accepted": True}
        server.feedback += 1


def test_moving_the_champion_alias_changes_what_is_served_without_a_restart(server, world):
    from components.registry.client import connect

    control = next(u for u in range(100, 400) if core.assign_arm(u, _experiment()) == 0)
    assert slate(server, {"user_id": control})["policy_version"] == 1
    pid = server.proc.pid
    connect(world["uri"]).set_registered_model_alias(MODEL, "champion", "2")
    deadline = datetime.now(timezone.utc).timestamp() + 30
    while slate(server, {"user_id": control})["policy_version"] != 2:
        assert datetime.now(timezone.utc).timestamp() < deadline, server.log_tail()
    history = [9, 8, 7]
    r = slate(server, {"user_id": control, "history": history})
    assert r["policy_version"] == 2 and r["policy_id"] == core.policy_id(1, 0, 2)
    np.testing.assert_allclose(r["propensities"], _expected(world, [r], [history])[0], rtol=1e-4)
    assert server.proc.pid == pid and server.proc.poll() is None
    assert server.request("GET", "/readyz")[1]["aliases"] == {"champion": 2, "challenger": 2}


def _experiment():
    from components.params import ServeExperimentParams

    return ServeExperimentParams(id=1, salt="encore-ab-1", arms=ARMS)


def test_sigterm_writes_every_slate_and_the_logs_pass_validation_and_ingest(server, world, tmp_path):
    from components.raw_logs.ingest import ingest
    from components.serve.export import export
    from components.validate.core import run as validate

    # uvicorn shuts down gracefully, then re-raises SIGTERM: exit by that signal is the clean end
    assert server.terminate() in (0, -signal.SIGTERM), server.log_tail()
    assert "stopped: every served row written" in server.log_tail()
    served = pl.read_parquet(world["root"] / "served" / "impressions")
    assert served.height == server.served * 10 and served["request_id"].n_unique() == server.served
    assert served["propensity"].is_between(0, 1, closed="right").all()
    assert pl.read_parquet(world["root"] / "served" / "feedback").height == server.feedback
    assert not list((world["root"] / "served").rglob(".*"))  # no half-written part

    logs = tmp_path / "logs"
    metrics = export(world["root"] / "served", world["raw"], logs)
    assert metrics["export/feedback"] == server.feedback and metrics["export/feedback_unmatched"] == 0
    assert metrics["export/dropped_unknown_users"] == 301  # the cold start + users 5000..5299
    params = tiny_params(validate__min_days=1)
    ingest(params, logs, tmp_path / "raw", tmp_path / "world")  # source.kind: logs, unchanged
    report = validate(params, tmp_path / "raw", tmp_path / "validation.html", None)
    assert report["validate/failed"] == 0
    impressions = pl.read_parquet(tmp_path / "raw" / "impressions.parquet")
    assert set(impressions["policy_id"].unique()) == {
        core.policy_id(1, a, v) for a in (0, 1) for v in (1, 2)
    } - {core.policy_id(1, 1, 1)}
    assert impressions["streamed"].sum() == 10 and (tmp_path / "raw" / "plays.parquet").exists()
