"""Save and load the world's hidden truth (``data/world/``).

Only ``components.world``, the simulate stage and the evaluation code may call
:func:`load_world`; a test enforces it. With real logs (``source: logs``) the folder holds
only a note that no truth exists, and :func:`load_world` says so plainly.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from components.errors import EncoreError
from components.params import SimulateParams
from components.world.catalogue import Catalogue, Population
from components.world.dynamics import World
from components.world.state import UserState

WORLD_JSON = "world.json"


class NoGroundTruth(EncoreError):
    """The logs came from outside the simulator: there is nothing to compare against."""


def save_world(world: World, path: Path, next_day: int) -> None:
    """Write catalogue, population and the current state; ``next_day`` is where time resumes."""
    path.mkdir(parents=True, exist_ok=True)
    for name, obj in (
        ("catalogue", world.catalogue),
        ("population", world.population),
        ("state", world.state),
    ):
        np.savez_compressed(path / f"{name}.npz", **{f.name: getattr(obj, f.name) for f in fields(obj)})
    meta = {"simulate": world.params.model_dump(mode="json"), "seed": world.seed, "next_day": next_day}
    (path / WORLD_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def has_truth(path: Path) -> bool:
    return (Path(path) / WORLD_JSON).exists()


def simulate_params(path: Path) -> SimulateParams:
    """The ``simulate`` parameters the world in ``path`` was made with (to replay it)."""
    path = Path(path)
    if not has_truth(path):
        raise NoGroundTruth(f"{path}: no ground truth here (the logs were ingested, not simulated).")
    return SimulateParams.model_validate(json.loads((path / WORLD_JSON).read_text())["simulate"])


def load_world(path: Path) -> tuple[World, int]:
    """The world as it stood at the end of the log, and the day index to continue from."""
    path = Path(path)
    if not has_truth(path):
        raise NoGroundTruth(f"{path}: no ground truth here (the logs were ingested, not simulated).")
    meta = json.loads((path / WORLD_JSON).read_text())
    params = SimulateParams.model_validate(meta["simulate"])
    parts = {}
    for name, cls in (("catalogue", Catalogue), ("population", Population), ("state", UserState)):
        with np.load(path / f"{name}.npz") as npz:
            parts[name] = cls(**{f.name: npz[f.name] for f in fields(cls)})
    world = World(params, parts["catalogue"], parts["population"], parts["state"])
    world.seed = int(meta["seed"])
    return world, int(meta["next_day"])
