"""One day of the loop's experiment: the current policy served to a treatment share, logging to the rest.

The treatment arm is the policy service's own path, imported, not copied: the assignment hash
(:func:`components.serve.core.assign_arm`), the ``policy_id`` layout
(:func:`components.serve.core.policy_id`) and the sampler with its ε-uniform exploration and exact
per-slot propensities (:class:`components.sampler.served.ServedPolicy`). The control arm is the
world's logging policy with its own exact propensities, so every impression of a loop day carries
the probability it was served with, whichever arm served it.
"""

from __future__ import annotations

import numpy as np

from components.params import LoopParams, ServeArmParams, ServeExperimentParams
from components.protocol import Contexts, Policy, Slates
from components.serve.core import assign_arm, policy_id


def loop_experiment(lp: LoopParams) -> ServeExperimentParams:
    """The loop as a two-arm experiment in the service's terms (arm 0 control, arm 1 treatment)."""
    return ServeExperimentParams(
        id=lp.experiment_id,
        salt=lp.salt,
        arms=[
            ServeArmParams(name="control", alias="logging", share=1.0 - lp.treatment_share),
            ServeArmParams(name="treatment", alias="loop", share=lp.treatment_share),
        ],
    )


def treated_listeners(n_users: int, lp: LoopParams) -> np.ndarray:
    """(n_users,) bool: the listeners the service's hash puts in the treatment arm (fixed per salt)."""
    experiment = loop_experiment(lp)
    return np.array([assign_arm(u, experiment) == 1 for u in range(n_users)], dtype=bool)


def served_policy_id(lp: LoopParams, round_index: int) -> int:
    """``policy_id`` of the slates the loop's treatment arm serves in round ``round_index`` (the
    version digits hold the index of the policy served: round r serves round r - 1's policy)."""
    return policy_id(lp.experiment_id, 1, round_index)


def _subset(contexts: Contexts, rows: np.ndarray) -> Contexts:
    return Contexts(
        user_ids=contexts.user_ids[rows],
        session_index=contexts.session_index[rows],
        day=contexts.day,
        history=contexts.history[rows],
        slate_size=contexts.slate_size,
        n_tracks=contexts.n_tracks,
    )


class ExperimentPolicy:
    """Route each session to its listener's arm; return one set of slates with per-row policy ids."""

    def __init__(self, control: Policy, treatment: Policy, treated: np.ndarray):
        self.control, self.treatment, self.treated = control, treatment, treated
        self.policy_id = control.policy_id

    def recommend(self, contexts: Contexts) -> Slates:
        n, k = len(contexts.user_ids), contexts.slate_size
        tracks = np.empty((n, k), dtype=np.int64)
        propensities = np.full((n, k), np.nan)
        ids = np.empty(n, dtype=np.int64)
        in_treatment = self.treated[contexts.user_ids]
        for policy, rows in ((self.control, ~in_treatment), (self.treatment, in_treatment)):
            if not rows.any():
                continue
            slates = policy.recommend(_subset(contexts, rows))
            tracks[rows] = slates.tracks
            if slates.propensities is not None:
                propensities[rows] = slates.propensities
            ids[rows] = policy.policy_id
        return Slates(tracks, propensities, ids)
