"""Stage ``reward_model``: train the transformer reward model (mid-term, or the click ablation)."""

SECTIONS = (
    "reward_model",
    "features",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
