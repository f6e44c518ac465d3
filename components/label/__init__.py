"""Stage ``label``: mid-term reward signals per recommended impression (see core.py)."""

SECTIONS = ("label",)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
