"""Run the world under its logging policy, day by day: the simulate stage writes each day as
logs; the experiment library replays the same days to fork the world where its arms start.

The same seeds give the same days, so a replay to day ``d`` reaches exactly the state the
logged world had at the start of day ``d`` (a test checks it against the logs).
"""

from __future__ import annotations

from collections.abc import Iterator

from tqdm.auto import tqdm

from components.params import SimulateParams
from components.world.dynamics import DayEvents, World
from components.world.policies import LoggingPolicy


def logging_world(params: SimulateParams) -> tuple[World, LoggingPolicy]:
    """A fresh world and its logging policy (nothing simulated yet)."""
    world = World.create(params)
    return world, LoggingPolicy(params.logging_policy, world.catalogue, world.population, params.seed)


def run_days(
    world: World, policy: LoggingPolicy, first: int, last: int, desc: str, progress: bool = True
) -> Iterator[DayEvents]:
    """Step ``world`` through days ``first .. last-1`` (negative = warm-up), yielding each day."""
    for day in tqdm(range(first, last), desc=desc, unit="day", disable=not progress):
        yield world.step(day, policy)


def world_at(params: SimulateParams, day: int, progress: bool = True) -> World:
    """The world as it stood at the start of logged day ``day`` (after the warm-up and days 0..day-1)."""
    world, policy = logging_world(params)
    for _ in run_days(world, policy, -params.warmup_days, day, f"replay to day {day}", progress):
        pass
    return world
