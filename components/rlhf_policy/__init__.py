"""Stage ``rlhf_policy``: RL fine-tuning of the SFT policy against a reward model (see core.py)."""

SECTIONS = (
    "rlhf_policy",
    "features",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
