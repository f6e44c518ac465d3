"""The layers hold: stages never import each other, nothing imports in a circle, and only the
world, the stage that runs it and evaluation reach the simulator's truth (RL through the watch).

All three checks walk the real import graph (``tests/import_graph.py``: every import in every
module, those inside functions included, transitively), and each is shown to catch a planted
violation.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO
from tests.import_graph import ImportGraph

WORLD = "components.world"
WATCH = "components.world.watch"
# Modules allowed to reach the truth, and why.
TRUTH_READERS = {
    "components.raw_logs.simulate": "runs the world and writes the truth",
    "components.raw_logs.core": "dispatches to simulate",
    "components.raw_logs.__main__": "the CLI of the stage that runs the world",
    "components.evaluate.simulated_ab": "the A/B test against the truth",
    "components.evaluate.truth": "labels the A/B arms' logs, checks the gate against the truth",
    "components.experiments.simulated": "runs the world's past A/B tests (its arms never read the truth)",
    "components.experiments.core": "dispatches to the simulated library",
    "components.experiments.__main__": "the CLI of the experiment library",
    "components.evaluate.core": "orchestrates evaluation, the truth part included",
    "components.evaluate.__main__": "the CLI of evaluation",
    "components.evaluate.headroom": "analysis on demand: policy and reward-model slates vs the truth's best",
}
WATCH_USERS = {
    "components.rlhf_policy.core": "logs the true value of RL's slates beside the proxy (metrics only)"
}


def stages(g: ImportGraph) -> set[str]:
    """Stage packages: the ones with a CLI (``components/<stage>/__main__.py``)."""
    return {m.split(".")[1] for m in g.files if m.startswith("components.") and m.endswith(".__main__")}


def _stage_of(module: str, names: set[str]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "components" and parts[1] in names else None


def stage_violations(g: ImportGraph) -> dict[str, set[str]]:
    """module -> the other stages' modules it reaches (libraries may reach no stage at all)."""
    names = stages(g)
    out = {}
    for m in g.files:
        if not m.startswith("components"):
            continue
        own = _stage_of(m, names)
        bad = {r for r in g.reach(m) if (s := _stage_of(r, names)) is not None and s != own}
        if bad:
            out[m] = bad
    return out


def truth_violations(g: ImportGraph) -> dict[str, set[str]]:
    """module -> how it reaches the truth, for modules outside the world that may not."""
    out: dict[str, set[str]] = {}
    for m in g.files:
        if not m.startswith("components") or m == WORLD or m.startswith(WORLD + "."):
            continue
        if WATCH in g.explicit[m] and m not in WATCH_USERS:
            out.setdefault(m, set()).add("imports the truth watch")
        reached = g.reach(m, stop=frozenset({WATCH}))
        if m not in TRUTH_READERS and any(
            r == WORLD or (r.startswith(WORLD + ".") and r != WATCH) for r in reached
        ):
            out.setdefault(m, set()).add("reaches components.world")
    return out


def test_the_graph_covers_the_code():
    g = ImportGraph.build(REPO)
    assert {
        "raw_logs",
        "validate",
        "features",
        "label",
        "reward_model",
        "sft_policy",
        "rlhf_policy",
        "evaluate",
        "register",
    } <= stages(g)
    assert len(g.reach("components.evaluate.__main__")) > 30


def test_no_stage_imports_another_stage_even_transitively():
    assert stage_violations(ImportGraph.build(REPO)) == {}


def test_the_import_graph_has_no_cycles():
    assert ImportGraph.build(REPO).cycle() is None


def test_only_the_world_its_stage_and_evaluation_reach_the_truth():
    g = ImportGraph.build(REPO)
    assert truth_violations(g) == {}
    # the allow-lists are not stale: each entry really does what it is allowed to
    assert all(WORLD in g.reach(m, stop=frozenset({WATCH})) for m in TRUTH_READERS)
    assert all(WATCH in g.explicit[m] for m in WATCH_USERS)


def _plant(root: Path, files: dict[str, str]) -> ImportGraph:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return ImportGraph.build(root, packages=("components",))


def test_the_checks_catch_planted_violations(tmp_path):
    g = _plant(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/world/__init__.py": "",
            "components/world/truth.py": "",
            "components/world/watch.py": "from components.world.truth import *\n",
            # a library importing a stage
            "components/lib.py": "def f():\n    from components.beta.core import x\n",
            "components/alpha/__init__.py": "",
            "components/alpha/__main__.py": "from components.lib import f\n",  # reaches beta through lib
            "components/alpha/core.py": "from components.world import watch\n",  # may not use the watch
            "components/beta/__init__.py": "",
            "components/beta/__main__.py": "",
            "components/beta/core.py": "from components.gamma import g\n",
            "components/gamma.py": "from components.beta.core import x\n",  # a cycle
            "components/leaky.py": "import components.world.truth\n",  # reads the truth
        },
    )
    assert "components.alpha.__main__" in stage_violations(g)
    assert "components.lib" in stage_violations(g)
    assert g.cycle() is not None
    assert truth_violations(g)["components.leaky"] == {"reaches components.world"}
    assert "imports the truth watch" in truth_violations(g)["components.alpha.core"]


def test_type_checking_imports_are_not_edges(tmp_path):
    g = _plant(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from components.b "
            "import B\n",
            "components/b.py": "from components.a import x\n",
        },
    )
    assert "components.b" not in g.explicit["components.a"] and g.cycle() is None
