"""The serving core on a small untrained GPT-2: assignment, policy ids, the fast decoder,
sampling that matches its own propensities, log parts, and the export to contract tables."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch

from components import contract
from components.params import ServeExperimentParams
from components.policy.decoding import slot_probabilities
from components.policy.model import build
from components.policy.vocab import ItemVocab
from components.sampler import sampling
from components.sampler.decoder import GPT2Decoder, HFDecoder, decoders
from components.serve import core
from components.serve.logbook import FEEDBACK, IMPRESSIONS, PartWriter
from tests.conftest import tiny_params


@pytest.fixture(scope="module")
def policy():
    """(model, vocab): 40 tracks, one prompt feature, history 6, slates of 4."""
    vocab = ItemVocab(
        list(range(100, 140)), ["u_x"], history_length=6, slate_size=4, edges={"u_x": [1.0, 5.0]}
    )
    model, tokenizer = build(vocab, tiny_params().sft_policy.model, "", seed=3)
    vocab.bind(tokenizer)
    with torch.no_grad():  # an untrained GPT-2 is near uniform: sharpen it so probabilities differ
        model.lm_head.weight.mul_(20.0)
    return model.eval(), vocab


def _prompts(vocab, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    histories = np.array([rng.choice(vocab.track_ids + [-1, 999], size=6) for _ in range(n)])
    values = [[0.0, 3.0, 9.0, None][i] for i in rng.integers(0, 4, size=n)]
    features = pl.DataFrame({"u_x": pl.Series(values, dtype=pl.Float64)})
    return vocab.prompts(features, histories)


def _experiment(shares=(0.7, 0.3), salt="s1") -> ServeExperimentParams:
    arms = [{"name": f"a{i}", "alias": f"x{i}", "share": s} for i, s in enumerate(shares)]
    return ServeExperimentParams(id=15, salt=salt, arms=arms)


def test_assignment_is_stable_and_follows_the_shares():
    exp = _experiment((0.5, 0.2, 0.3))
    arms = np.array([core.assign_arm(u, exp) for u in range(30_000)])
    assert [core.assign_arm(u, exp) for u in range(200)] == arms[:200].tolist()  # stable
    for i, share in enumerate((0.5, 0.2, 0.3)):
        assert abs((arms == i).mean() - share) < 4 * (share * (1 - share) / len(arms)) ** 0.5
    other = np.array([core.assign_arm(u, _experiment((0.5, 0.2, 0.3), salt="s2")) for u in range(30_000)])
    assert 0.5 < (other != arms).mean() < 0.7  # a new salt reshuffles (independent draws differ ~62%)


def test_shares_must_sum_to_one_and_names_be_unique():
    with pytest.raises(ValueError, match="sum to"):
        _experiment((0.5, 0.6))
    with pytest.raises(ValueError, match="unique"):
        ServeExperimentParams(id=1, salt="s", arms=[{"name": "a", "alias": "x", "share": 0.5}] * 2)


def test_policy_ids_are_readable_unique_and_below_2_53():
    assert core.policy_id(15, 0, 7) == 15_01_0007
    assert core.parse_policy_id(core.policy_id(15, 1, 9999)) == (15, 1, 9999)
    top = core.policy_id(core.MAX_EXPERIMENT_ID, 97, 9999)
    assert top < contract.MAX_ID
    ids = {core.policy_id(e, a, v) for e in (1, 2) for a in range(3) for v in (1, 2, 9999)}
    assert len(ids) == 18
    for bad in ((15, 0, 10_000), (15, 99, 1), (core.MAX_EXPERIMENT_ID + 1, 0, 1)):
        with pytest.raises(core.ServeError):
            core.policy_id(*bad)


def test_the_fast_decoder_gives_hugging_faces_logits(policy):
    model, vocab = policy
    prompts = torch.from_numpy(_prompts(vocab, 5))
    steps = torch.tensor(vocab.track_token_ids[:15]).view(5, 3)
    full = model(input_ids=torch.cat([prompts, steps], dim=1)).logits[:, prompts.shape[1] - 1 :]
    assert isinstance(decoders(model, vocab.slate_size)(), GPT2Decoder)
    with torch.inference_mode():
        for decoder in (decoders(model, vocab.slate_size)(), HFDecoder(model)):
            got = [decoder.prefill(prompts)] + [decoder.step(steps[:, j]) for j in range(3)]
            for j, logits in enumerate(got):
                torch.testing.assert_close(logits, full[:, j].float(), rtol=1e-4, atol=1e-4)


def _sample(model, vocab, prompts, temperature, epsilon, seed=0):
    mask = sampling.non_track_mask(vocab)
    with torch.inference_mode():
        s = sampling.sample_slates(
            decoders(model, vocab.slate_size)(),
            mask,
            prompts,
            vocab.slate_size,
            temperature,
            epsilon,
            torch.Generator().manual_seed(seed),
        )
    return s, sampling.track_lookup(vocab)(s.tokens)


@pytest.mark.parametrize("temperature", [0.7, 0.0])
def test_propensities_are_the_mixture_of_the_policy_and_uniform(policy, temperature):
    model, vocab = policy
    prompts = _prompts(vocab, 64)
    s, tracks = _sample(model, vocab, prompts, temperature, epsilon=0.3)
    pi = slot_probabilities(model, vocab, prompts, tracks, temperature=temperature or None)
    np.testing.assert_allclose(s.policy_probability, pi, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        s.propensity, 0.7 * pi + 0.3 / sampling.allowed_counts(vocab, prompts), rtol=1e-4
    )
    assert ((s.propensity > 0) & (s.propensity <= 1)).all() and s.explored.any()
    for row, prompt in zip(tracks, prompts):  # valid: k distinct catalogue tracks, none from the prompt
        assert len(set(row)) == vocab.slate_size and set(row) <= set(vocab.track_ids)
        assert not set(vocab.track_to_token(row)) & set(prompt.tolist())


def test_what_is_sampled_follows_the_propensities_it_reports(policy):
    """Slot 0 of 40,000 draws for one prompt: its frequencies are the reported propensities."""
    model, vocab = policy
    prompts = np.repeat(_prompts(vocab, 1, seed=4), 40_000, axis=0)
    s, tracks = _sample(model, vocab, prompts, temperature=1.0, epsilon=0.25, seed=1)
    first = pl.DataFrame({"t": tracks[:, 0], "p": s.propensity[:, 0]})
    freq = first.group_by("t").agg(pl.len() / len(first), pl.col("p").first())
    se = np.sqrt(freq["p"] * (1 - freq["p"]) / len(first))
    assert (np.abs(freq["len"] - freq["p"]) < 5 * se + 1e-4).all()
    assert abs(freq["p"].sum() - 1) < 0.05  # nearly every track was drawn at least once


def test_prompts_use_the_request_history_or_the_stores(policy):
    _, vocab = policy
    features = {"u_x": [3.0, None], "recent_tracks": [[101, 102], None]}
    p, cold = core.prompts(vocab, features, [None, [120, 121]])
    assert cold.tolist() == [False, True]
    hist = slice(2, 2 + vocab.history_length)
    assert vocab.token_to_track(p[0, hist]).tolist()[-2:] == [101, 102]
    assert vocab.token_to_track(p[1, hist]).tolist()[-2:] == [120, 121]


def _impressions(n: int, request_ids, ts_us: int) -> dict:
    return {
        "request_id": np.repeat(request_ids, 2),
        "user_id": np.repeat(np.arange(n), 2),
        "ts": np.full(2 * n, ts_us),
        "position": np.tile([0, 1], n),
        "track_id": np.tile([100, 101], n),
        "policy_id": np.full(2 * n, core.policy_id(1, 0, 1)),
        "propensity": np.full(2 * n, 0.5),
        "arm": np.full(2 * n, "control"),
        "alias": np.full(2 * n, "champion"),
    }


def test_log_parts_are_written_by_size_by_age_and_on_close(tmp_path):
    sized = PartWriter(tmp_path / "a", IMPRESSIONS, flush_rows=10, flush_seconds=60)
    sized.start()
    sized.append(_impressions(6, [f"{i:032x}" for i in range(6)], 1))
    deadline = time.monotonic() + 10
    while not list((tmp_path / "a").glob("part-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    sized.close()
    timed = PartWriter(tmp_path / "b", FEEDBACK, flush_rows=10**6, flush_seconds=0.2)
    timed.start()
    timed.append({"request_id": ["0" * 32], "position": [3], "ts": [5], "ms_played": [0]})
    time.sleep(1.0)
    assert len(list((tmp_path / "b").glob("part-*"))) == 1
    timed.append({"request_id": ["1" * 32], "position": [4], "ts": [6], "ms_played": [0]})
    timed.close()
    assert pq.read_table(tmp_path / "a").num_rows == 12 and pq.read_table(tmp_path / "b").num_rows == 2
    table = pq.read_table(tmp_path / "b")
    assert table.schema.field("ts").type == contract.UTC_TS and table["streamed"].null_count == 2
    assert not list(tmp_path.rglob(".*"))


def test_export_joins_feedback_and_meets_the_contract(tmp_path, tiny_raw):
    from components.serve.export import export

    users = pl.read_parquet(tiny_raw / "users.parquet")["user_id"].head(3).to_list()
    writer = PartWriter(tmp_path / "served" / "impressions", IMPRESSIONS, 10**6, 60)
    columns = _impressions(3, ["a" * 32, "b" * 32, "c" * 32], int(time.time() * 1e6))
    columns["user_id"] = np.repeat(users, 2)
    writer.append(columns)
    writer.append(_impressions(1, ["d" * 32], int(time.time() * 1e6)) | {"user_id": np.array([10**12] * 2)})
    writer.close()
    feedback = PartWriter(tmp_path / "served" / "feedback", FEEDBACK, 10**6, 60)
    now = int(time.time() * 1e6)
    for rid, pos, ms, ts in (
        ("a" * 32, 1, 5_000, now),
        ("a" * 32, 1, 40_000, now + 10),
        ("f" * 32, 0, 1, now),
    ):
        feedback.append(
            {
                "request_id": [rid],
                "position": [pos],
                "ts": [ts],
                "ms_played": [ms],
                "streamed": [ms >= 30_000],
            }
            | {"skipped": [False], "saved": [False]}
        )
    feedback.close()
    metrics = export(tmp_path / "served", tiny_raw, tmp_path / "logs")
    assert metrics["export/dropped_unknown_users"] == 1 and metrics["export/feedback_unmatched"] == 1
    imp = pl.read_parquet(tmp_path / "logs" / "impressions.parquet")
    assert imp.columns == contract.IMPRESSIONS.column_names and imp.height == 6
    assert imp["event_id"].to_list() == list(range(6)) and imp["session_id"].n_unique() == 3
    played = imp.filter(pl.col("ms_played") > 0)
    assert played.height == 1 and played["ms_played"].item() == 40_000 and played["streamed"].item()
    plays = pl.read_parquet(tmp_path / "logs" / "plays.parquet")
    assert plays.height == 1 and plays["source"].item() == "rec" and plays["ts"].item() >= imp["ts"].min()
    experiments = pl.read_parquet(tmp_path / "logs" / "experiments.parquet")
    assert experiments["policy_id"].to_list() == [core.policy_id(1, 0, 1)]
