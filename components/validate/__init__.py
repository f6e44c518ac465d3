"""Stage ``validate``: Great Expectations checks of the raw logs (schema, ranges, ids, daily volume)."""

SECTIONS = ("validate",)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
