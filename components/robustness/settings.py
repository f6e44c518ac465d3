"""From the suite's settings to the params of one run: (world, seed) -> a complete params mapping."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from components.params import Params, WorldSetting, params_from_dict


@dataclass(frozen=True)
class SuiteRun:
    """One realisation of one world: the default params with the world's keys and this seed."""

    world: WorldSetting
    seed: int

    @property
    def name(self) -> str:
        return f"{self.world.name}-s{self.seed}"

    @property
    def overrides(self) -> dict[str, Any]:
        return {**self.world.set, "simulate.seed": self.seed}


def set_dotted(raw: dict[str, Any], values: dict[str, Any]) -> None:
    """Set ``{"section.key.leaf": value}`` in a params mapping, in place (keys checked at validation)."""
    for dotted, value in values.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value


def suite_runs(params: Params) -> list[SuiteRun]:
    """Every (world, seed) of the suite, world by world in params.yaml order."""
    return [SuiteRun(world, seed) for world in params.robustness.worlds for seed in params.robustness.seeds]


def run_params(raw: dict[str, Any], run: SuiteRun, tracking_uri: str | None = None) -> dict[str, Any]:
    """``raw`` (params.yaml as a mapping) for ``run``: its world's simulate keys and seed set, validated
    (an error names the world). ``tracking_uri`` points the run at its own MLflow store and
    registry, so no world's gate moves another's champion."""
    out = copy.deepcopy(raw)
    if tracking_uri is not None:
        out["tracking"]["uri"] = tracking_uri
    set_dotted(out, run.overrides)
    params_from_dict(out, where=f"robustness run '{run.name}'")
    return out


def world_sections(simulate: dict, register: dict, tracking: dict, run: dict) -> dict[str, dict]:
    """The three sections a suite run changes, for the Kubeflow pipeline (which gets ``run`` as a
    dict: ``name``, ``seed``, ``set``): the world's simulate keys and seed, and registered-model
    names and an MLflow experiment of the run's own, so that no world's gate moves another's
    champion on the shared tracking server."""
    from components.params import SimulateParams

    sim = copy.deepcopy(simulate)
    set_dotted({"simulate": sim}, {**run["set"], "simulate.seed": run["seed"]})
    SimulateParams.model_validate(sim)
    suffix = f"-{run['name']}"
    return {
        "simulate": sim,
        "register": {
            **register,
            "policy_model": register["policy_model"] + suffix,
            "reward_model": register["reward_model"] + suffix,
        },
        "tracking": {**tracking, "experiment": tracking["experiment"] + suffix},
    }


def kfp_runs(params: Params) -> list[dict[str, Any]]:
    """The suite's runs as the Kubeflow pipeline's ``runs`` parameter."""
    return [
        {
            "name": r.name,
            "world": r.world.name,
            "seed": r.seed,
            "mechanism": r.world.mechanism,
            "set": r.world.set,
        }
        for r in suite_runs(params)
    ]
