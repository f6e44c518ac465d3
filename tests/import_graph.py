"""The project's import graph, read from the source (``ast``), for the architecture tests.

Nodes are modules (``components.reward.model``); an edge ``a -> b`` means importing ``a``
imports ``b``: every ``import``/``from ... import`` anywhere in ``a`` (heavy imports sit inside
functions, and they count), plus ``a -> its parent package`` (Python runs a package's
``__init__`` before any of its modules). Imports under ``if TYPE_CHECKING:`` are not run and
are not edges. Only first-party modules (``components``, ``pipelines``) are nodes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FIRST_PARTY = ("components", "pipelines")


@dataclass
class ImportGraph:
    root: Path
    files: dict[str, Path] = field(default_factory=dict)  # module -> file
    explicit: dict[str, set[str]] = field(default_factory=dict)  # written imports only
    edges: dict[str, set[str]] = field(default_factory=dict)  # + child -> parent package

    @classmethod
    def build(cls, root: Path, packages: Iterable[str] = FIRST_PARTY) -> "ImportGraph":
        g = cls(root)
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                g.files[_module_name(path.relative_to(root))] = path
        for module, path in g.files.items():
            g.explicit[module] = {
                t for t in _imports(module, path, path.name == "__init__.py") if t in g.files
            }
        for module in g.files:
            parent = module.rpartition(".")[0]
            g.edges[module] = set(g.explicit[module]) | ({parent} if parent in g.files else set())
        return g

    def reach(self, start: str | Iterable[str], stop: frozenset[str] = frozenset()) -> set[str]:
        """Every module importing ``start`` runs (``start`` included). Modules in ``stop`` are
        reached but not walked through: gateways whose own imports are vetted separately."""
        todo = [start] if isinstance(start, str) else list(start)
        seen: set[str] = set()
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            if m not in stop:
                todo += self.edges.get(m, ())
        return seen

    def cycle(self) -> list[str] | None:
        """One cycle among the written imports, or None."""
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(m: str) -> list[str] | None:
            state[m] = 1
            stack.append(m)
            for n in sorted(self.explicit[m]):
                if state.get(n) == 1:
                    return stack[stack.index(n) :] + [n]
                if n not in state and (found := visit(n)):
                    return found
            stack.pop()
            state[m] = 2
            return None

        for m in sorted(self.files):
            if m not in state and (found := visit(m)):
                return found
        return None


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(module: str, path: Path, is_package: bool) -> set[str]:
    """Modules ``module`` imports (absolute names; a ``from x import y`` may name module ``x.y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = {id(n) for node in ast.walk(tree) if _is_type_checking(node) for n in ast.walk(node)}
    base = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                target = ".".join([*anchor, *([target] if target else [])])
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    # ("import a.b.c" also runs a and a.b: the child -> parent edges of the graph carry that)
    return found - {"", module}


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def code_deps(graph: ImportGraph, entry: str) -> list[str]:
    """What ``dvc.yaml`` must list for a stage whose command runs module ``entry``: every file
    the command imports, a whole package folder when every module in it is imported."""
    files = {graph.files[m].relative_to(graph.root).as_posix() for m in graph.reach(entry)}
    out: set[str] = set()
    for f in files:
        folder = f.rpartition("/")[0]
        siblings = {m.relative_to(graph.root).as_posix() for m in (graph.root / folder).glob("*.py")}
        whole = folder.count("/") >= 1 and siblings <= files  # components/<pkg>/ wholly used
        out.add(folder if whole else f)
    return sorted(out)
