"""``serve.decoding: rank``: the service ranks with the reward model a registered policy carries,
on the online store's features, and serves exactly what the A/B test's ranked arm would.

The store is the tiny world's embedded Feast store (the features stage materialised it); the
policy is the tiny SFT policy with the tiny reward model copied into its ``ranker/``, loaded as
the alias watcher loads a registered version."""

from __future__ import annotations

import logging
import shutil
import signal
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
import torch

from components import contract
from components.featurestore.lookup import FeatureLookup
from components.featurestore.store import open_store, repo_config
from components.policy.decoding import slot_probabilities
from components.policy.model import RANKER_DIR
from components.reward.model import RewardModel
from components.sampler.ranked import rank_slates
from components.sampler.served import history_scorer
from components.serve import core
from components.serve.policies import AliasWatcher, load_policy
from components.serve.ranking import online_scorer
from components.serve.service import Service, SlateRequest
from tests.conftest import tiny_params

EPSILON, TEMPERATURE, DRAWS, PROPENSITY_DRAWS = 0.1, 1.0, 3, 4


@pytest.fixture(scope="module")
def ranked_policy(tmp_path_factory, tiny_sft, tiny_reward_model):
    """The tiny SFT policy carrying the tiny reward model as its ranker (as RL saves it)."""
    folder = tmp_path_factory.mktemp("ranked") / "policy"
    shutil.copytree(tiny_sft[0], folder)
    shutil.copytree(tiny_reward_model[0], folder / RANKER_DIR)
    return folder


@pytest.fixture(scope="module")
def offline(tiny_raw, tiny_features, params):
    """The A/B test's view of the features: the in-memory lookup of the feature sources."""
    tracks = pl.from_arrow(contract.read(tiny_raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    return FeatureLookup.from_sources(tiny_features, params.features, tracks)


def _requests(lookup: FeatureLookup, n: int, seed: int) -> tuple[np.ndarray, list]:
    """Known listeners (and two the store never saw), every third bringing its own history."""
    rng = np.random.default_rng(seed)
    known = lookup.users()["user_id"].to_numpy()
    users = np.concatenate([rng.choice(known, size=n - 2, replace=False), [10**9, 10**9 + 1]])
    histories = [
        rng.choice(lookup.tracks["track_id"].to_numpy(), size=12, replace=False).tolist()
        if i % 3 == 0
        else None
        for i in range(n)
    ]
    return users, histories


def test_the_service_scores_candidates_as_the_ab_tests_ranker_does(
    ranked_policy, offline, tiny_features, params
):
    """Online features (Feast's ``reward_model`` service) and the lookup give the ranker the same
    inputs, so the same scores — request-time features included."""
    store = open_store(repo_config(params.features, tiny_features / "feast"))
    users, _ = _requests(offline, 30, seed=1)
    rng = np.random.default_rng(2)
    catalogue = offline.tracks["track_id"].to_numpy()
    histories = np.array([rng.choice(catalogue, size=10, replace=False) for _ in users])
    histories[::4, :6] = -1  # shorter histories, as requests bring them
    rows = np.repeat(np.arange(len(users)), 7)
    tracks = rng.choice(catalogue, size=len(rows))

    ranker = RewardModel.load(ranked_policy / RANKER_DIR, device="cpu")
    served = online_scorer(ranker, store, users, histories, now=offline.as_of)(rows, tracks)
    reference = RewardModel.load(ranked_policy / RANKER_DIR, device="cpu").with_lookup(offline)
    expected = history_scorer(reference, users, histories)(rows, tracks)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    assert np.unique(np.round(served, 5)).size > len(served) // 4  # the scores do tell candidates apart
    # a day later the request-time features move (days since the artist was last played)
    later = online_scorer(ranker, store, users, histories, now=offline.as_of + timedelta(days=40))(
        rows, tracks
    )
    assert not np.allclose(later, served)


def test_a_policy_is_loaded_with_its_ranker_only_when_the_service_ranks(ranked_policy, tiny_sft, caplog):
    assert load_policy(ranked_policy, 1, rank=True).ranker is not None
    assert load_policy(ranked_policy, 1, rank=False).ranker is None
    with caplog.at_level(logging.WARNING, logger="encore.serve.policies"):
        assert load_policy(tiny_sft[0], 2, rank=True).ranker is None  # SFT: served sampled
    assert "no ranker" in caplog.text


def test_a_registered_policy_brings_its_ranker_to_the_service(ranked_policy, tmp_path):
    """What the alias watcher loads is the registry's copy: ``ranker/`` must travel with it."""
    import mlflow

    from components.registry.client import connect, downloaded_policy
    from tests.serve.helpers import register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    version = register(uri, "encore-ranked-test", ranked_policy, tmp_path / "artifacts", ("champion",))
    folder = downloaded_policy(connect(uri), "encore-ranked-test", str(version))
    loaded = load_policy(folder, version, rank=True)
    assert loaded.ranker is not None
    original = RewardModel.load(ranked_policy / RANKER_DIR, device="cpu")
    assert loaded.ranker.encoder.vocab_size == original.encoder.vocab_size
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.ranker.network.parameters(), original.network.parameters())
    )


def test_a_ranker_reading_features_the_store_does_not_serve_is_refused_at_load(ranked_policy, tiny_features):
    """The alias watcher's check: a version whose ranker reads a feature the online store lacks is
    not loaded (the old version keeps serving), rather than failing its first ranked request."""
    from components.errors import EncoreError

    params = tiny_params(serve__decoding="rank")
    service = Service(params, tiny_features, tiny_features.parent / "unused-log", tracking_uri="unused")
    service.store = open_store(repo_config(params.features, tiny_features / "feast"))
    service.served_features = {
        f.name
        for p in service.store.get_feature_service("policy").feature_view_projections
        for f in p.features
    }
    policy = load_policy(ranked_policy, 1, rank=True)
    service._check(policy)  # what the ranker reads is all there
    policy.ranker.encoder.candidate_features = [*policy.ranker.encoder.candidate_features, "t_made_up_28d"]
    with pytest.raises(EncoreError, match=r"ranker.*\['t_made_up_28d'\]"):
        service._check(policy)


def test_a_ranked_batch_serves_and_logs_what_rank_slates_serves(
    ranked_policy, tiny_sft, offline, tiny_features, tmp_path
):
    """One micro-batch through ``Service.serve_batch``: the champion (carrying a ranker) is served
    generate-then-rank — slates, Monte-Carlo propensities and the policy's own slot probabilities
    exactly those of :func:`rank_slates` with the A/B test's offline ranker and the same random
    numbers — and the challenger (no ranker) is sampled as before."""
    params = tiny_params(
        serve__decoding="rank",
        serve__temperature=TEMPERATURE,
        serve__epsilon=EPSILON,
        serve__rank_draws=DRAWS,
        serve__rank_propensity_draws=PROPENSITY_DRAWS,
    )
    service = Service(params, tiny_features, tmp_path / "served", tracking_uri="unused")
    service.store = open_store(repo_config(params.features, tiny_features / "feast"))
    service.feature_service = service.store.get_feature_service("policy")
    watcher = AliasWatcher(None, "unused", ["champion", "challenger"], poll_seconds=60, rank=True)
    champion, challenger = load_policy(ranked_policy, 1, rank=True), load_policy(tiny_sft[0], 2, rank=True)
    watcher.current = {"champion": champion, "challenger": challenger}
    service.watcher = watcher
    service.generator = torch.Generator().manual_seed(11)

    users, histories = _requests(offline, 40, seed=3)
    out = service.serve_batch([SlateRequest(int(u), h) for u, h in zip(users, histories)])

    exp = params.serve.experiment
    arms = np.array([core.assign_arm(int(u), exp) for u in users])
    assert set(arms) == {0, 1}, "the batch should hold both arms"
    ranked_rows = np.flatnonzero(arms == 0)
    served = np.array([out[i]["tracks"] for i in ranked_rows])
    logged = np.array([out[i]["propensities"] for i in ranked_rows])
    assert all(out[i]["policy_version"] == 1 for i in ranked_rows)

    # the same batch by hand: prompts from the same online read, the A/B test's ranker, same seed
    values = service.features([int(users[i]) for i in ranked_rows])
    batch_histories = [histories[i] for i in ranked_rows]
    prompts, _ = core.prompts(champion.vocab, values, batch_histories)
    recent = core.request_histories(values, batch_histories, champion.vocab.history_length)
    served_at = datetime.strptime(out[ranked_rows[0]]["served_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    reference = RewardModel.load(ranked_policy / RANKER_DIR, device="cpu")
    reference.with_lookup(
        FeatureLookup(offline.views, offline.tracks, served_at.replace(tzinfo=timezone.utc))
    )
    expected = rank_slates(
        champion.sampler,
        prompts,
        history_scorer(reference, users[ranked_rows], recent),
        DRAWS,
        TEMPERATURE,
        EPSILON,
        torch.Generator().manual_seed(11),  # version 1 decodes first in the batch
        propensity_draws=PROPENSITY_DRAWS,
    )
    np.testing.assert_array_equal(served, champion.sampler.to_track(expected.tokens))
    np.testing.assert_allclose(logged, expected.propensity, rtol=1e-6)
    assert ((logged >= 0) & (logged <= 1)).all() and (logged > 0).mean() > 0.5

    rows = pl.read_parquet(service.impressions.flush())
    mine = rows.filter(pl.col("model_version") == 1)
    np.testing.assert_allclose(
        mine["policy_probability"].to_numpy().reshape(served.shape),
        slot_probabilities(champion.model, champion.vocab, prompts, served, temperature=TEMPERATURE),
        rtol=1e-5,
    )
    assert mine["explored"].to_numpy().mean() < 0.5
    sampled = np.array([out[i]["propensities"] for i in np.flatnonzero(arms == 1)])
    assert ((sampled > 0) & (sampled <= 1)).all()  # the challenger: the sampler's exact propensities


def test_the_http_service_serves_ranked_slates_when_asked(ranked_policy, offline, tiny_features, tmp_path):
    """``python -m components.serve`` with ``serve.decoding: rank`` and no exploration: a registered
    policy with a ranker answers slates whose tracks its ranker scores best first, in the context of
    the request (the listener's online features at the time served, the history it brought)."""
    from components.sequences import right_aligned
    from tests.serve.helpers import Server, register, write_params

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register(uri, "encore-ranked-http", ranked_policy, tmp_path / "artifacts", ("champion", "challenger"))
    params = write_params(
        tmp_path / "params.yaml",
        {
            "tracking.enabled": False,
            "register.policy_model": "encore-ranked-http",
            "serve.decoding": "rank",
            "serve.epsilon": 0.0,
            "serve.rank_propensity_draws": 4,
        },
    )
    server = Server(params, tiny_features, tmp_path / "served", uri, tmp_path)
    try:
        server.wait_ready()
        users, _ = _requests(offline, 12, seed=4)
        rng = np.random.default_rng(5)
        catalogue = offline.tracks["track_id"].to_numpy()
        histories = [rng.choice(catalogue, size=12, replace=False).tolist() for _ in users]
        responses = []
        for u, h in zip(users, histories):
            status, body = server.request("POST", "/slate", {"user_id": int(u), "history": h})
            assert status == 200, body
            responses.append(body)
    finally:
        assert server.terminate() in (0, -signal.SIGTERM), server.log_tail()

    reference = RewardModel.load(ranked_policy / RANKER_DIR, device="cpu")
    vocab = load_policy(ranked_policy, 1).vocab
    for u, h, r in zip(users, histories, responses):
        served_at = datetime.strptime(r["served_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        reference.with_lookup(FeatureLookup(offline.views, offline.tracks, served_at))
        recent = right_aligned(pl.Series([h], dtype=pl.List(pl.Int64)), vocab.history_length)
        scores = history_scorer(reference, np.array([u]), recent)(
            np.zeros(len(r["tracks"]), dtype=int), np.array(r["tracks"])
        )
        assert (np.diff(scores) <= 1e-6).all(), (r["tracks"], scores)  # best first
        assert not set(r["tracks"]) & set(h) and len(set(r["tracks"])) == len(r["tracks"])
        assert all(0 <= p <= 1 for p in r["propensities"])
