"""Library: the reward — what it means (labels) and how it is learned and scored (the model).

- :mod:`~components.reward.signals`, :mod:`~components.reward.labels`,
  :mod:`~components.reward.surrogate` — mid-term signals per impression, the composite
  reward, the surrogate index; used by the ``label`` stage and to label A/B logs in evaluation.
- :mod:`~components.reward.examples` — the reward model's examples and its held-out split.
- :mod:`~components.reward.tokens`, :mod:`~components.reward.model` — the token layout and
  :class:`~components.reward.model.RewardModel` (``load(path).score_frame(frame)``,
  ``with_lookup(lookup).score(users, slates)``): trained by ``reward_model``, used by RL and evaluation.
- :mod:`~components.reward.pyfunc` — the MLflow pyfunc wrapper.

Nothing is imported here: the label stage needs no torch.
"""
