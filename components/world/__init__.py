"""The listening world: a simulator with a hidden ground truth.

Public API (everything else in this package is an implementation detail):

- :class:`World` — catalogue, listeners, state; ``World.create(params.simulate)``.
- :class:`Contexts`, :class:`Slates`, :class:`Policy` — the ``recommend(contexts) -> slates`` protocol
  (defined in :mod:`components.protocol`, re-exported here).
- :class:`LoggingPolicy`, :class:`ClickGreedyOracle`, :class:`LongTermOracle`.
- :func:`run_ab` / :class:`ABResult` — the ground-truth A/B test with common random numbers.
- :func:`save_world` / :func:`load_world` — the truth in ``data/world/``.

Only this package, the raw_logs stage (which runs the world) and the evaluation code may
read the truth; the RL stage sees it only through :mod:`components.world.watch` (aggregate
metrics, never the truth itself). ``tests/unit/test_architecture.py`` enforces this on the
import graph.
"""

from components.protocol import Contexts, Policy, Slates
from components.world.ab import ABResult, Lift, run_ab
from components.world.dynamics import World
from components.world.policies import ClickGreedyOracle, LoggingPolicy, LongTermOracle
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
