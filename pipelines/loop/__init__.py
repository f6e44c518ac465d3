"""Stage ``loop``: the closed loop in the world — serve the policy stochastically, log with
propensities, relabel, retrain the reward model, RL again — round by round (see core.py)."""

SECTIONS = (
    "loop",
    "features",
    "label",
    "reward_model",
    "rlhf_policy",
    "sft_policy",
    "evaluate",
    "ab",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
