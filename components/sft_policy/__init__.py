"""Stage ``sft_policy``: the generative recommender, trained to imitate listening (see core.py)."""

SECTIONS = (
    "sft_policy",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
