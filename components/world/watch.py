"""Over-optimisation watch: the true long-term value of the RL policy's slates, as it learns.

The one door through which training code may consult the simulator's truth: it hands back
aggregate metrics to *log* beside the proxy reward, never anything a model could learn from.
The RL stage asks for a watch; with real logs there is no truth and it gets ``None``.
``tests/unit/test_architecture.py`` checks that only the RL stage opens this door.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def truth_watch(
    world_dir: Path | None,
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]] | None:
    """An observer ``(users, slates, proxy_rewards) -> metrics`` reading the truth, or None."""
    from components.world.response import true_long_term_value
    from components.world.truth import has_truth, load_world

    if world_dir is None or not has_truth(world_dir):
        return None
    world, _ = load_world(world_dir)
    dyn, cat, pop, w = (
        world.params.dynamics,
        world.catalogue,
        world.population,
        world.params.oracle.habit_weight,
    )

    def observe(users: np.ndarray, slates: np.ndarray, proxy: np.ndarray) -> dict[str, float]:
        if not len(users):
            return {}
        truth = true_long_term_value(dyn, cat, pop, np.repeat(users, slates.shape[1]), slates.ravel(), w)
        return {"watch/true_value": float(truth.mean()), "watch/proxy_reward": float(np.mean(proxy))}

    return observe
