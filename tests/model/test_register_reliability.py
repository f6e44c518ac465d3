"""Registration that cannot be fooled: a dead registry is an error, a stale gate moves nothing,
and a failure at any step of a registration is finished by the rerun (each injected)."""

from __future__ import annotations

import socket
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from components.errors import EncoreError
from components.register import core as register
from components.registry import client as R
from tests.conftest import tiny_params
from tests.model.test_register import _gate, _perturbed


class Injected(RuntimeError):
    """The failure a test plants."""


def _params(tmp_path: Path, case: str = ""):
    return tiny_params(
        tracking__uri=f"sqlite:///{tmp_path}/mlflow.db",
        register__policy_model=f"policy{case}",
        register__reward_model=f"reward{case}",
    )


def _state(uri: str, rp) -> dict:
    """Every version and alias of both registered models."""
    c = R.connect(uri)
    out = {}
    for role, name in (("policy", rp.policy_model), ("reward", rp.reward_model)):
        versions = c.search_model_versions(f"name='{name}'")
        out[role] = {
            "versions": sorted(int(v.version) for v in versions),
            "complete": sorted(int(v.version) for v in versions if v.tags.get(register.COMPLETE_TAG)),
            "aliases": {
                a: int(R.version_by_alias(c, name, a).version)
                for a in ("challenger", "champion")
                if R.version_by_alias(c, name, a) is not None
            },
        }
    return out


def test_an_unreachable_registry_is_an_error_not_no_champion(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    c = R.connect(f"http://127.0.0.1:{port}")
    with pytest.raises(R.RegistryError, match=f"127.0.0.1:{port}.*reading policy@champion"):
        R.version_by_alias(c, "policy", "champion")


def test_a_model_or_alias_that_does_not_exist_yet_is_none(tmp_path):
    c = R.connect(f"sqlite:///{tmp_path}/mlflow.db")
    assert R.version_by_alias(c, "policy", "champion") is None  # no model
    c.create_registered_model("policy")
    assert R.version_by_alias(c, "policy", "champion") is None  # a model, no alias


def test_two_runs_that_both_saw_no_champion_cannot_both_promote(
    tmp_path, monkeypatch, tiny_sft, tiny_reward_model
):
    """Runs A and B are evaluated against the same registry (no champion); A registers first and
    promotes; B's gate is stale: it is refused and moves nothing."""
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    rp, uri = params.register_, params.tracking.uri
    gate_a, gate_b = _gate(tmp_path / "a", "promote"), _gate(tmp_path / "b", "promote")
    a = register.run(params, tiny_sft[0], tiny_reward_model[0], gate_a, tmp_path)
    before = _state(uri, rp)
    with pytest.raises(EncoreError, match="another run promoted in between"):
        register.run(
            params, _perturbed(tiny_sft[0], tmp_path / "b_policy", 3), tiny_reward_model[0], gate_b, tmp_path
        )
    assert _state(uri, rp) == before
    assert before["policy"]["aliases"]["champion"] == a["policy_version"]


def test_nothing_moves_when_the_evaluation_did_not_run(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    """A champion is in place; a register with no gate.json fails and leaves every version and
    alias as it was."""
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    register.run(params, tiny_sft[0], tiny_reward_model[0], _gate(tmp_path / "e1", "promote"), tmp_path)
    before = _state(params.tracking.uri, params.register_)
    assert before["policy"]["aliases"] == {"challenger": 1, "champion": 1}
    other = _perturbed(tiny_sft[0], tmp_path / "other", 4)
    with pytest.raises(EncoreError, match="evaluate stage must run"):
        register.run(params, other, tiny_reward_model[0], tmp_path / "missing", tmp_path)
    assert _state(params.tracking.uri, params.register_) == before


WRITES = [
    ("log the models", "log"),
    ("register the policy", ("register_model", 1)),
    ("register the reward model", ("register_model", 2)),
    ("first challenger alias", ("set_registered_model_alias", 1)),
    ("second challenger alias", ("set_registered_model_alias", 2)),
    ("first champion alias", ("set_registered_model_alias", 3)),
    ("second champion alias", ("set_registered_model_alias", 4)),
    ("first completion tag", ("set_model_version_tag", 1)),
    ("second completion tag", ("set_model_version_tag", 2)),
]


def _fail_at(monkeypatch, where) -> None:
    if where == "log":

        def broken(*args, **kwargs):
            raise Injected("log")

        monkeypatch.setattr(register, "_log_models", broken)
        return
    method, nth = where
    owner = mlflow if method == "register_model" else MlflowClient
    original = getattr(owner, method)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise Injected(f"{method} #{nth}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, flaky)


def test_a_failure_at_any_step_is_finished_by_the_rerun(tmp_path, monkeypatch, tiny_sft, tiny_reward_model):
    """For each write a promotion makes, fail it once, rerun, and compare with an uninterrupted
    promotion: the same versions, aliases and completion marks, nothing registered twice."""
    monkeypatch.chdir(tmp_path)
    expected = None
    for i, (step, where) in enumerate([("none", None), *WRITES]):
        root = tmp_path / f"case{i}"
        params = _params(tmp_path, str(i))  # one store, a model name per case
        gate = _gate(root / "evaluation", "promote")
        if where is not None:
            with monkeypatch.context() as m:
                _fail_at(m, where)
                with pytest.raises(Injected):
                    register.run(params, tiny_sft[0], tiny_reward_model[0], gate, root)
        out = register.run(params, tiny_sft[0], tiny_reward_model[0], gate, root)
        assert out["promoted"], step
        state = _state(params.tracking.uri, params.register_)
        if expected is None:
            expected = state
        assert state == expected, step
        again = register.run(params, tiny_sft[0], tiny_reward_model[0], gate, root)
        assert not again["registered"] and _state(params.tracking.uri, params.register_) == expected, step
