"""Stage ``features``: feature sources, Feast apply + materialise, the point-in-time training frame."""

SECTIONS = ("features",)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
