"""The simulated A/B test: candidate policies against the ground truth, common random numbers.

Arms: the logging policy, the SFT policy, the RL policies and the two oracles (bounds). All
start from the world as it was at the end of the log.
"""

from __future__ import annotations

from pathlib import Path

from components.params import ABParams
from components.world import ABResult, ClickGreedyOracle, LoggingPolicy, LongTermOracle, load_world, run_ab

TABLE_METRICS = ("active_days", "retained", "streams", "skips", "distinct_artists", "habits_formed", "saves")


def world_policies(world_dir: Path) -> dict:
    """The world's own arms: logging policy and both oracles."""
    world, _ = load_world(world_dir)
    P = world.params
    return {
        "logging": LoggingPolicy(P.logging_policy, world.catalogue, world.population, P.seed),
        "click_oracle": ClickGreedyOracle(),
        "long_term_oracle": LongTermOracle(),
    }


def simulated_ab(
    world_dir: Path, policies: dict, ab: ABParams, progress: bool = True, record: bool = False
) -> ABResult:
    world, next_day = load_world(world_dir)
    return run_ab(
        world, policies, ab.horizon_days, ab.seed, next_day, ab.n_users, ab.confidence, progress, record
    )
