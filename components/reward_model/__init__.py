"""Stage ``reward_model``: a transformer reward model over listening context and candidate.

Public API: ``RewardModel.load(path).score_frame(frame)`` / ``.with_lookup(lookup).score(users, slates)``.
"""

from components.reward_model.model import RewardModel

__all__ = ["RewardModel"]
