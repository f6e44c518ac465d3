"""The simulator's hidden truth may be read only by the world, simulate and evaluation code.

No feature, label or model may depend on it: a stage that imported ``components.world``
(or opened ``data/world``) could leak the truth into what it learns, so this test scans
every module's imports and string literals.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# Packages allowed to touch the truth, and why.
ALLOWED = {
    "components/world": "the simulator itself",
    "components/simulate": "runs the world and writes the truth",
    "components/raw_logs": "dispatches to simulate",
    "components/evaluate": "the only consumer: scores policies against the truth",
}


# Ingest writes a "no ground truth" note into the truth slot (its CLI names data/world as
# the output folder); the RL CLI hands the truth's path to the evaluation code's watch, which
# only logs. Neither may import the world.
WRITES_TRUTH_SLOT_ONLY = {"components/ingest/__main__.py", "components/rlhf_policy/__main__.py"}


def _truth_uses(path: Path, check_paths: bool = True) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components.world"):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("components.world")]
        elif check_paths and isinstance(node, ast.Constant) and isinstance(node.value, str) and "data/world" in node.value:
            found.append(f"line {node.lineno}: mentions data/world")
    return found


def _scanned() -> list[Path]:
    files = sorted((REPO / "components").rglob("*.py"))
    return [f for f in files if not any(f.relative_to(REPO).as_posix().startswith(a + "/") for a in ALLOWED)]


def test_only_allowed_code_reads_the_truth():
    files = _scanned()
    assert len(files) > 5, "the scan must actually cover the stage code"
    offenders = {}
    for f in files:
        rel = f.relative_to(REPO).as_posix()
        if uses := _truth_uses(f, check_paths=rel not in WRITES_TRUTH_SLOT_ONLY):
            offenders[rel] = uses
    assert not offenders, f"these modules read the hidden truth: {offenders}"


def test_the_scan_detects_a_truth_import(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("from components.world.truth import load_world\nX = 'data/world/state.npz'\n")
    assert len(_truth_uses(leaky)) == 2
