"""dvc.yaml cannot drift from the code: each stage lists every module its command imports and
the params sections it declares; a listed code path the command never imports is an error too."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from tests.conftest import REPO
from tests.import_graph import ImportGraph, code_deps

CODE_ROOTS = ("components/", "pipelines/")


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module(cmd: str) -> str:
    """The module a stage's command runs: a stage package (``components.evaluate``) or a
    library's CLI module (``components.registry.snapshot``)."""
    found = re.search(r"-m ((?:components|pipelines)(?:\.\w+)+)", cmd)
    assert found, f"a stage command must run a components CLI: {cmd}"
    return found.group(1)


def _entry(graph: ImportGraph, module: str) -> str:
    """What ``python -m module`` runs: the package's ``__main__``, or the module itself."""
    return f"{module}.__main__" if f"{module}.__main__" in graph.files else module


def _listed(spec: dict) -> list[str]:
    return [d for d in spec.get("deps", []) if isinstance(d, str) and d.startswith(CODE_ROOTS)]


def coverage_problems(graph: ImportGraph, module: str, listed: list[str]) -> list[str]:
    """Files the command imports that no dep covers, and deps that cover nothing it imports."""
    files = {graph.files[m].relative_to(graph.root).as_posix() for m in graph.reach(_entry(graph, module))}

    def covers(dep: str, f: str) -> bool:
        return f == dep or f.startswith(dep.rstrip("/") + "/")

    problems = [f"not listed: {f}" for f in sorted(files) if not any(covers(d, f) for d in listed)]
    problems += [f"listed but never imported: {d}" for d in listed if not any(covers(d, f) for f in files)]
    return problems


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_code_deps_are_what_the_command_imports(stage):
    spec = _stages()[stage]
    module = _module(spec["cmd"])
    graph = ImportGraph.build(REPO)
    problems = coverage_problems(graph, module, _listed(spec))
    expected = "\n".join(f"      - {d}" for d in code_deps(graph, _entry(graph, module)))
    assert not problems, (
        f"dvc.yaml stage '{stage}':\n  " + "\n  ".join(problems) + f"\nExact list:\n{expected}"
    )


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_params_are_the_sections_the_stage_declares(stage):
    spec = _stages()[stage]
    declared = importlib.import_module(_module(spec["cmd"])).SECTIONS
    assert sorted(spec.get("params", [])) == sorted(declared), (
        f"dvc.yaml stage '{stage}' params {spec.get('params')} != SECTIONS {list(declared)} of "
        f"{_module(spec['cmd'])}"
    )


def test_the_coverage_check_catches_drift():
    graph = ImportGraph.build(REPO)
    listed = _listed(_stages()["evaluate"])
    assert coverage_problems(graph, "components.evaluate", listed) == []
    missing = [d for d in listed if d != "components/world"]
    assert "not listed: components/world/ab.py" in coverage_problems(graph, "components.evaluate", missing)
    extra = [*listed, "components/validate"]
    assert coverage_problems(graph, "components.evaluate", extra) == [
        "listed but never imported: components/validate"
    ]
