"""Stage ``experiments``: the library of past A/B tests the signals are validated on.

In simulation the world runs plausible production policies (never the oracles) as arms
forked from the same logged day, the same listeners in each (common random numbers); with
real logs the library is read from the logs' ``experiments`` table. Either way the output is
one folder in the raw-log contract (:mod:`components.library`).
"""

SECTIONS = (
    "source",
    "experiments",
)  # the params sections this stage reads (+ tracking); dvc.yaml and Kubeflow follow it
