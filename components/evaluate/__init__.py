"""Stage ``evaluate``: off-policy estimates, ranking, the simulated A/B test, the gate decision.

The only stage besides ``simulate`` that reads the simulator's truth (``simulated_ab.py`` and
the orchestration in ``core.py``; the estimators never do)."""

SECTIONS = (
    "evaluate",
    "ab",
    "register",
    "features",
    "label",
    "reward_model",
    "sft_policy",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
