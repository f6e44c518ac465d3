"""Stage ``signals``: the signal scorecard and the learned composite (see core.py)."""

SECTIONS = (
    "signals",
    "label",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
