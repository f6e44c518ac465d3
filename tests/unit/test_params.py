"""params.yaml -> typed objects: typos and wrong types are errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from components.errors import ParamsError
from components.params import load_params, params_from_dict
from tests.conftest import REPO


def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repo_params_load():
    p = load_params(REPO / "params.yaml")
    assert p.simulate.slate_size > 0 and p.source.kind in ("world", "logs")


def test_unknown_key_is_named_with_a_suggestion():
    raw = _raw()
    raw["simulate"]["users"]["n_user"] = raw["simulate"]["users"].pop("n_users")
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw)
    msg = str(err.value)
    assert "simulate.users.n_user: unknown key (did you mean 'n_users'?)" in msg
    assert "simulate.users.n_users: missing" in msg


def test_mistyped_value_is_named():
    raw = _raw()
    raw["simulate"]["days"] = "fifty"
    with pytest.raises(ParamsError, match=r"simulate\.days: Input should be a valid integer"):
        params_from_dict(raw)


def test_bool_is_not_an_int_and_string_is_not_a_float():
    raw = _raw()
    raw["simulate"]["dynamics"]["stream_bias"] = "1.0"
    with pytest.raises(ParamsError, match=r"stream_bias"):
        params_from_dict(raw)


def test_cross_field_constraint():
    with pytest.raises(ParamsError, match="pool_size"):
        load_params(REPO / "params.yaml", {"simulate.logging_policy.pool_size": 2})


def test_override_of_unknown_key_is_refused():
    with pytest.raises(ParamsError, match="unknown key 'n_user'"):
        load_params(REPO / "params.yaml", {"simulate.users.n_user": 5})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulate: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
