"""Atomic outputs: a failed stage never leaves something that looks complete.

Stages write into a temporary sibling and move it into place only when everything
succeeded; on failure the temporary is removed and any earlier output is left as it was. A
process killed outright cannot clean up: the next write of the same target removes what such
a run left (``.<name>.<random>.encore-tmp``, ``.<name>.old``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".encore-tmp"


def remove_leftovers(target: Path) -> list[Path]:
    """Delete the temporaries a killed write of ``target`` left beside it; return what went.
    Matches only this target's own names (``tempfile``'s random part has no dots), so
    ``.signals.html.<x>.encore-tmp`` is never taken for a leftover of ``signals``."""
    own = re.compile(rf"^\.{re.escape(target.name)}\.(?:[A-Za-z0-9_]+{re.escape(TMP_SUFFIX)}|old)$")
    gone = []
    if target.parent.is_dir():
        for p in target.parent.iterdir():
            if own.match(p.name):
                remove(p)
                gone.append(p)
    return gone


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces ``target`` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would leak into the final output
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(target)


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``target`` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o644)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)


def write_json(target: str | Path, payload: Any) -> None:
    """Write JSON atomically, keys sorted, so reruns with equal content are byte-identical."""
    with atomic_file(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")


def remove(*paths: str | Path) -> None:
    """Delete outputs (files or folders) that must not survive a failed run."""
    for p in map(Path, paths):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "isoformat"):
        return x.isoformat()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
