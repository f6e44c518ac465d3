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


# --------------------------------------------------------------------------- described, documented


def test_every_key_has_a_description():
    from components.params import _FIELD_OF, SECTIONS, Params, _fields

    rows = [row for s in SECTIONS for row in _fields(Params.model_fields[_FIELD_OF[s]].annotation, f"{s}.")]
    assert len(rows) > 100
    assert [key for key, _, desc in rows if not desc.strip()] == []


def test_docs_params_md_is_generated_from_the_code():
    from components.params import markdown

    assert (REPO / "docs" / "params.md").read_text() == markdown(), (
        "run: python -m components.params > docs/params.md"
    )


def test_a_stage_help_lists_the_parameters_it_reads():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "components.features", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "features.short_window_days (int) - the short rolling window" in out
    assert "--set" in out and "simulate.seed" not in out  # only the sections it reads


# --------------------------------------------------------------------------- overrides and sections


def test_set_overrides_parse_yaml_values_and_reject_malformed_ones():
    from components.cli import overrides

    assert overrides(["rlhf_policy.max_steps=50", "source.kind=logs", "ab.confidence=0.9"]) == {
        "rlhf_policy.max_steps": 50,
        "source.kind": "logs",
        "ab.confidence": 0.9,
    }
    p = load_params(REPO / "params.yaml", overrides(["rlhf_policy.max_steps=50"]))
    assert p.rlhf_policy.max_steps == 50
    with pytest.raises(ParamsError, match="SECTION.KEY=VALUE"):
        overrides(["max_steps=50"])


def test_a_stage_that_reads_an_undeclared_section_fails_loudly():
    from components.params import UndeclaredSectionError, restrict

    p = restrict(load_params(REPO / "params.yaml"), ["features"], "features")
    assert p.features.short_window_days > 0 and p.tracking.experiment  # declared (+ tracking, always)
    with pytest.raises(UndeclaredSectionError, match="'simulate' to SECTIONS"):
        p.simulate.seed


def test_a_task_validates_just_the_sections_it_receives():
    from components.params import restrict

    raw = _raw()
    got = params_from_dict(
        {"tracking": raw["tracking"], "label": raw["label"]}, only=["label"], stage="label"
    )
    full = load_params(REPO / "params.yaml")
    assert got.section_hash("label") == restrict(full, ["label"], "label").section_hash("label")
    with pytest.raises(ParamsError, match="missing section"):
        params_from_dict({"tracking": raw["tracking"]}, only=["label"], stage="label")
    raw["label"]["atribution"] = raw["label"].pop("attribution")
    with pytest.raises(
        ParamsError, match="label.atribution: unknown key \\(did you mean 'attribution'\\?\\)"
    ):
        params_from_dict({"tracking": raw["tracking"], "label": raw["label"]}, only=["label"], stage="label")


def test_set_on_the_command_line_changes_what_the_stage_does(tmp_path, tiny_raw):
    """--set reaches the stage: with a smaller slate bound the same (valid) logs are refused."""
    import subprocess
    import sys

    from tests.pipelines.helpers import write_tiny_params

    params = write_tiny_params(tmp_path / "params.yaml")
    base = [
        sys.executable,
        "-m",
        "components.validate",
        "--params",
        str(params),
        "--raw-dir",
        str(tiny_raw),
        "--report",
        str(tmp_path / "v.html"),
        "--metrics",
        str(tmp_path / "v.json"),
    ]
    assert subprocess.run(base, cwd=REPO, capture_output=True, text=True).returncode == 0
    refused = subprocess.run(
        [*base, "--set", "validate.max_slate_size=5"], cwd=REPO, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "position" in refused.stderr
