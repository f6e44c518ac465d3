"""The listening world: a simulator with a hidden ground truth.

Public API (everything else in this package is an implementation detail):

- :class:`World` — catalogue, listeners, state; ``World.create(params.simulate)``.
- :class:`Contexts`, :class:`Slates`, :class:`Policy` — the ``recommend(contexts) -> slates`` protocol.
- :class:`LoggingPolicy`, :class:`ClickGreedyOracle`, :class:`LongTermOracle`.
- :func:`run_ab` / :class:`ABResult` — the ground-truth A/B test with common random numbers.
- :func:`save_world` / :func:`load_world` — the truth in ``data/world/``.

Only this package, the simulate stage and the evaluation code may read the truth.
"""

from components.world.ab import ABResult, Lift, run_ab
from components.world.dynamics import World
from components.world.policies import (
    ClickGreedyOracle,
    Contexts,
    LoggingPolicy,
    LongTermOracle,
    Policy,
    Slates,
)
from components.world.response import true_long_term_value
from components.world.truth import NoGroundTruth, has_truth, load_world, save_world

__all__ = [
    "ABResult",
    "ClickGreedyOracle",
    "Contexts",
    "Lift",
    "LoggingPolicy",
    "LongTermOracle",
    "NoGroundTruth",
    "Policy",
    "Slates",
    "World",
    "has_truth",
    "load_world",
    "run_ab",
    "save_world",
    "true_long_term_value",
]
