"""The gate and the registry: a worse challenger stays a challenger, a better one becomes champion,
the same models twice register nothing new — on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from components.errors import EncoreError
from components.register.core import run
from components.registry import client as R
from components.registry.gate import decide, write_decision
from tests.conftest import tiny_params
from tests.service_checks import postgres_url, scratch_database

GOOD_SLATES = {"skip_rate": 0.2, "genre_diversity": 0.4, "artist_concentration": 0.2, "coverage": 0.3}
VALID_RM = {"pearson": 0.6, "pearson_loo_low": 0.4}  # the reward model's score tracks the library's arms
SHOWN = (0.5, 0.05, 0.95)  # the lift shows in the logged outcomes alone (model-free) too


def test_gate_passes_only_with_a_positive_lower_bound_and_all_guardrails():
    rp = tiny_params().register_
    unit = "28-day active days"
    good = decide(
        rp,
        (0.5, 0.1, 0.9),
        unit,
        "champion",
        GOOD_SLATES,
        None,
        kl=1.0,
        reward_model=VALID_RM,
        model_free=SHOWN,
    )
    assert good.promote and good.gate == "promote" and all(r.startswith("PASS") for r in good.reasons)
    straddles = decide(rp, (0.5, -0.1, 1.1), unit, "champion", GOOD_SLATES, None, 1.0)
    assert not straddles.promote and any("FAIL predicted effect" in r for r in straddles.reasons)
    assert f"lower bound must exceed {rp.min_lift_lower_bound}" in straddles.reasons[0]
    for change, failing in (
        ({"skip_rate": 0.9}, "skip rate"),
        ({"genre_diversity": 0.01}, "genres"),
        ({"artist_concentration": 0.9}, "most frequent artist"),
        ({"coverage": 0.001}, "catalogue"),
    ):
        d = decide(rp, (0.5, 0.1, 0.9), unit, "champion", GOOD_SLATES | change, None, 1.0)
        assert not d.promote and any(r.startswith("FAIL") and failing in r for r in d.reasons), failing
    too_far = decide(rp, (0.5, 0.1, 0.9), unit, "champion", GOOD_SLATES, None, kl=99.0)
    assert not too_far.promote and any(r.startswith("FAIL KL") for r in too_far.reasons)
    off_log = decide(
        rp, (0.5, 0.1, 0.9), unit, "champion", GOOD_SLATES, None, 1.0, support=0.5 * rp.min_support
    )
    failed = [r for r in off_log.reasons if r.startswith("FAIL")]
    assert not off_log.promote and len(failed) == 1 and "imitation policy's effective sample" in failed[0]


def test_a_reward_model_the_library_does_not_validate_holds_the_challenger():
    """The predicted effect rests on the reward model wherever the challenger leaves the logs: a
    score that does not track the library's arm outcomes (here it flips sign when one arm is left
    out) holds an otherwise passing challenger; with no library to check it on, it is reported."""
    rp = tiny_params().register_
    args = (rp, (0.5, 0.1, 0.9), "28-day active days", "champion", GOOD_SLATES, None, 1.0)
    held = decide(*args, reward_model={"pearson": 0.15, "pearson_loo_low": -0.13})
    failed = [r for r in held.reasons if r.startswith("FAIL")]
    assert (
        not held.promote and len(failed) == 1 and "reward model's score" in failed[0] and "-0.13" in failed[0]
    )
    assert decide(*args, reward_model=VALID_RM).promote
    unvalidated = decide(*args, reward_model={})
    assert unvalidated.promote and any(
        r.startswith("INFO") and "not validated" in r for r in unvalidated.reasons
    )


def test_a_lift_the_logged_outcomes_do_not_show_holds_the_challenger():
    """The doubly robust prediction clears the floor, but the model-free (self-normalised IPS) lift's
    lower bound does not: hold, naming it; with register.require_model_free off it is reported only,
    and when it was not measured it is reported, not enforced."""
    rp = tiny_params().register_
    unit = "28-day active days"
    args = (rp, (0.5, 0.1, 0.9), unit, "logging", GOOD_SLATES, None, 1.0)
    held = decide(*args, reward_model=VALID_RM, model_free=(0.4, -1.1, 1.9))
    failed = [r for r in held.reasons if r.startswith("FAIL")]
    assert (
        not held.promote
        and len(failed) == 1
        and "logged outcomes alone" in failed[0]
        and "-1.100" in failed[0]
    )
    assert decide(*args, reward_model=VALID_RM, model_free=(0.6, 0.2, 1.0)).promote
    relaxed = tiny_params(register__require_model_free=False).register_
    info = decide(relaxed, *args[1:], reward_model=VALID_RM, model_free=(0.4, -1.1, 1.9))
    assert info.promote and any(r.startswith("INFO") and "not enforced" in r for r in info.reasons)
    unmeasured = decide(*args, reward_model=VALID_RM)
    assert unmeasured.promote and any("was not measured" in r for r in unmeasured.reasons)


def test_a_guardrail_the_library_does_not_validate_is_reported_not_enforced():
    rp = tiny_params().register_
    validity = {"skip_rate": 0.4, "genre_diversity": -0.7, "artist_concentration": 0.3, "coverage": 0.6}
    d = decide(
        rp,
        (0.5, 0.1, 0.9),
        "28-day active days",
        "logging",
        GOOD_SLATES | {"genre_diversity": 0.01},
        validity,
        1.0,
        reward_model=VALID_RM,
        model_free=SHOWN,
    )
    assert d.promote  # genre diversity fails, but across the library it did not protect active days
    info = [r for r in d.reasons if r.startswith("INFO")]
    assert len(info) == 1 and "genres" in info[0] and "not enforced" in info[0] and "r=-0.70" in info[0]
    held = decide(
        rp, (0.5, 0.1, 0.9), "28-day active days", "logging", GOOD_SLATES | {"coverage": 0.001}, validity, 1.0
    )
    assert not held.promote  # coverage is validated: enforced


def test_the_predicted_effect_widens_by_the_composites_own_error():
    from components.registry.gate import predicted_effect

    (est, low, high), unit = predicted_effect((0.02, 0.01, 0.03), days_per_unit=10.0, loo_rmse=0.3)
    assert unit == "28-day active days" and est == pytest.approx(0.2)
    assert low < 0.1 and high > 0.3  # wider than the bootstrap interval alone (0.1, 0.3)
    assert (0.2 - low) == pytest.approx(((0.1) ** 2 + (1.96 * 0.3) ** 2) ** 0.5, rel=1e-3)
    same, per_slot = predicted_effect((0.02, 0.01, 0.03), days_per_unit=float("nan"), loo_rmse=0.3)
    assert same == (0.02, 0.01, 0.03) and per_slot == "composite reward per slot"


def _gate(folder: Path, decision: str, champion: int | None = None) -> Path:
    """An evaluation folder whose gate.json says ``decision`` (a real decision: lift CI above or
    across 0), made against champion version ``champion`` (None: against the logging policy)."""
    folder.mkdir(parents=True, exist_ok=True)
    lift = (0.5, 0.1, 0.9) if decision == "promote" else (0.1, -0.3, 0.5)
    d = decide(tiny_params().register_, lift, "28-day active days", "champion", GOOD_SLATES, None, kl=1.0)
    d.champion_version = champion
    write_decision(folder, d)
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
    c = R.connect(uri)

    with pytest.raises(
        EncoreError, match="inconsistent decision"
    ):  # the DAG's promote must agree with gate.json
        run(params, sft, reward, _gate(tmp_path / "e0", "hold"), tmp_path, promote=True)
    assert c.search_model_versions(f"name='{name}'") == []

    first = run(params, sft, reward, _gate(tmp_path / "e1", "promote"), tmp_path, promote=True)
    assert first["registered"] and first["promoted"]
    version = c.get_model_version_by_alias(name, "champion")
    assert int(version.version) == first["policy_version"]
    # registered from the logged model itself, which carries the evaluation's numbers
    import mlflow

    assert version.source == f"models:/{first['policy_model_id']}"
    logged = mlflow.get_logged_model(first["policy_model_id"])
    assert {m.key for m in logged.metrics} >= {"gate/lift", "gate/lift_low", "gate/promote", "gate/kl"}

    again = run(params, sft, reward, _gate(tmp_path / "e1", "promote"), tmp_path)
    assert not again["registered"] and "already registered" in again["note"]
    assert len(c.search_model_versions(f"name='{name}'")) == 1

    worse = run(
        params, _perturbed(sft, tmp_path / "worse", 1), reward, _gate(tmp_path / "e2", "hold"), tmp_path
    )
    assert worse["registered"] and not worse["promoted"]
    assert int(c.get_model_version_by_alias(name, "challenger").version) == worse["policy_version"]
    assert int(c.get_model_version_by_alias(name, "champion").version) == first["policy_version"]

    better = run(
        params,
        _perturbed(sft, tmp_path / "better", 2),
        reward,
        _gate(tmp_path / "e3", "promote", champion=first["policy_version"]),
        tmp_path,
    )
    assert better["promoted"]
    champion = c.get_model_version_by_alias(name, "champion")
    assert int(champion.version) == better["policy_version"]
    for tag in (
        "encore.git_commit",
        "encore.dvc_data_hash",
        "encore.params_hash",
        "encore.pipeline_run_id",
        R.FINGERPRINT_TAG,
    ):
        assert champion.tags.get(tag), tag
    # the registered policy loads and serves slates through MLflow
    import mlflow.pyfunc
    import pandas as pd

    served = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    vocab_features = json.loads((sft / "item_vocab.json").read_text())["features"]
    out = served.predict(pd.DataFrame({**{f: [2.0] for f in vocab_features}, "history": [[0, 1, 2]]}))
    assert len(out) == 1 and len(set(out[0])) == params.sft_policy.slate_size
    _loads_without_encore(
        uri, f"models:/{name}@champion", vocab_features, params.sft_policy.slate_size, tmp_path
    )


LOAD_ELSEWHERE = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in repr(f)]  # Encore is not installed here
try:
    import components
    raise SystemExit("components is importable before the model is loaded: the check proves nothing")
except ModuleNotFoundError:
    pass
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
features = json.loads(sys.argv[2])
slates = model.predict(pd.DataFrame({**{f: [2.0] for f in features}, "history": [[0, 1, 2]]}))
import components
print(json.dumps({"slates": [list(map(int, s)) for s in slates], "code": components.__file__}))
"""


def _loads_without_encore(uri: str, model_uri: str, features: list[str], k: int, tmp_path: Path) -> None:
    """The registered model loads in a fresh process that has the pinned wheels but not Encore:
    the code it needs travels inside the model (``code_paths``)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k_: v for k_, v in os.environ.items() if k_ not in ("PYTHONPATH",)} | {"MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, model_uri, json.dumps(features)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(set(result["slates"][0])) == k
    assert "components/__init__.py" in result["code"] and "/code/" in result["code"], result["code"]


def test_registry_round_trip_on_sqlite(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    monkeypatch.chdir(tmp_path)  # the file artifact store lands here
    _scenario(tmp_path, f"sqlite:///{tmp_path}/mlflow.db", tiny_sft[0], tiny_reward_model[0])


@pytest.mark.integration
def test_registry_round_trip_on_postgresql(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    monkeypatch.chdir(tmp_path)
    with scratch_database("encore_registry") as db:
        _scenario(tmp_path, postgres_url(db), tiny_sft[0], tiny_reward_model[0])
