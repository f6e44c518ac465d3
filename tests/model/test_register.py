"""The gate and the registry: a worse challenger stays a challenger, a better one becomes champion,
the same models twice register nothing new — on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from components.register import registry as R
from components.register.core import GATE_FILE, run
from components.register.gate import decide
from tests.conftest import tiny_params
from tests.service_checks import postgres_url, scratch_database


def test_gate_passes_only_with_a_positive_lower_bound_and_all_guardrails():
    rp = tiny_params().register_
    good = decide(rp, (0.05, 0.01, 0.09), "champion", skip_rate=0.2, genre_diversity=0.4, kl=1.0)
    assert good.promote and good.gate == "promote" and all(r.startswith("PASS") for r in good.reasons)
    straddles = decide(rp, (0.05, -0.01, 0.11), "champion", 0.2, 0.4, 1.0)
    assert not straddles.promote and any("FAIL DR lift" in r for r in straddles.reasons)
    for kwargs, failing in (({"skip_rate": 0.9}, "skip rate"), ({"genre_diversity": 0.01}, "genre diversity"), ({"kl": 99.0}, "KL")):
        args = {"skip_rate": 0.2, "genre_diversity": 0.4, "kl": 1.0} | kwargs
        d = decide(rp, (0.05, 0.01, 0.09), "champion", **args)
        assert not d.promote and any(r.startswith("FAIL") and failing in r for r in d.reasons), failing


def _gate(folder: Path, decision: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / GATE_FILE).write_text(json.dumps({"gate": decision, "reasons": [f"test: {decision}"], "promote": decision == "promote"}))
    return folder


def _perturbed(src: Path, dst: Path, seed: int) -> Path:
    """A different policy (other weights), same architecture."""
    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    torch.manual_seed(seed)
    save_file({k: v + 0.01 * torch.randn_like(v) for k, v in weights.items()}, str(dst / "model.safetensors"))
    return dst


def _scenario(tmp_path: Path, uri: str, sft: Path, reward: Path) -> None:
    params = tiny_params(tracking__uri=uri, register__policy_model=f"policy-{uuid.uuid4().hex[:6]}")
    name = params.register_.policy_model
    c = R.client(uri)

    first = run(params, sft, reward, _gate(tmp_path / "e1", "promote"), tmp_path)
    assert first["registered"] and first["promoted"]
    assert int(c.get_model_version_by_alias(name, "champion").version) == first["policy_version"]

    again = run(params, sft, reward, _gate(tmp_path / "e1", "promote"), tmp_path)
    assert not again["registered"] and "already registered" in again["note"]
    assert len(c.search_model_versions(f"name='{name}'")) == 1

    worse = run(params, _perturbed(sft, tmp_path / "worse", 1), reward, _gate(tmp_path / "e2", "hold"), tmp_path)
    assert worse["registered"] and not worse["promoted"]
    assert int(c.get_model_version_by_alias(name, "challenger").version) == worse["policy_version"]
    assert int(c.get_model_version_by_alias(name, "champion").version) == first["policy_version"]

    better = run(params, _perturbed(sft, tmp_path / "better", 2), reward, _gate(tmp_path / "e3", "promote"), tmp_path)
    assert better["promoted"]
    champion = c.get_model_version_by_alias(name, "champion")
    assert int(champion.version) == better["policy_version"]
    for tag in ("encore.git_commit", "encore.dvc_data_hash", "encore.params_hash", "encore.pipeline_run_id", R.FINGERPRINT_TAG):
        assert champion.tags.get(tag), tag
    # the registered policy loads and serves slates through MLflow
    import mlflow.pyfunc
    import pandas as pd

    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    vocab_features = json.loads((sft / "item_vocab.json").read_text())["features"]
    out = served.predict(pd.DataFrame({**{f: [2.0] for f in vocab_features}, "history": [[0, 1, 2]]}))
    assert len(out) == 1 and len(set(out[0])) == params.sft_policy.slate_size


def test_registry_round_trip_on_sqlite(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    monkeypatch.chdir(tmp_path)  # the file artifact store lands here
    _scenario(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", tiny_sft[0], tiny_reward_model[0])


def test_nothing_moves_when_the_evaluation_did_not_run(tmp_path, tiny_sft, tiny_reward_model):
    from components.errors import EncoreError

    params = tiny_params(tracking__uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(EncoreError, match="evaluate stage must run"):
        run(params, tiny_sft[0], tiny_reward_model[0], tmp_path / "missing", tmp_path)


@pytest.mark.integration
def test_registry_round_trip_on_postgresql(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    monkeypatch.chdir(tmp_path)
    with scratch_database("encore_registry") as db:
        _scenario(tmp_path, postgres_url(db), tiny_sft[0], tiny_reward_model[0])
