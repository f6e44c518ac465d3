"""Compile the KFP pipelines into ``pipelines/compiled/`` — or, with ``--check``, fail if stale.

Usage: ``python -m pipelines.compile`` (write) / ``python -m pipelines.compile --check`` (CI).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import typer

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def pipelines() -> dict:
    """Name of the compiled file -> pipeline function."""
    from pipelines.robustness import robustness
    from pipelines.training import training

    return {"encore_training.yaml": training, "encore_robustness.yaml": robustness}


def compile_to(out_dir: Path) -> list[Path]:
    from kfp import compiler

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in pipelines().items():
        compiler.Compiler().compile(fn, str(out_dir / name))
        written.append(out_dir / name)
    return written


def same_spec(a: Path, b: Path) -> bool:
    """Equal as pipeline specs. The header comment is ignored: KFP prints the default
    of a dict parameter there in arbitrary key order."""
    import yaml

    if not (a.exists() and b.exists()):
        return False
    return list(yaml.safe_load_all(a.read_text())) == list(yaml.safe_load_all(b.read_text()))


def stale_files(compiled_dir: Path = COMPILED_DIR) -> list[str]:
    """Names of compiled specs that differ from a fresh compile (or are missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        return [f.name for f in compile_to(Path(tmp)) if not same_spec(f, compiled_dir / f.name)]


def write_fresh(out_dir: Path = COMPILED_DIR) -> list[Path]:
    """Compile, replacing only specs whose content changed (no churn from the header)."""
    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in compile_to(Path(tmp)):
            if not same_spec(f, out_dir / f.name):
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, out_dir / f.name)
                changed.append(out_dir / f.name)
    return changed


app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    check: bool = typer.Option(False, "--check", help="do not write; exit 1 if a committed spec is stale"),
    out_dir: Path = typer.Option(COMPILED_DIR, "--out-dir", help="where compiled specs go"),
) -> None:
    """Compile every pipeline (or check the committed specs are fresh)."""
    if check:
        stale = stale_files(out_dir)
        if stale:
            print(
                f"stale compiled pipeline(s): {', '.join(stale)}; run `python -m pipelines.compile`",
                file=sys.stderr,
            )
            raise typer.Exit(1)
        print("compiled pipelines are fresh")
        return
    changed = write_fresh(out_dir)
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("compiled pipelines already fresh")


if __name__ == "__main__":
    app()
