"""The robustness suite: the whole DAG on several worlds, one table of what held where.

A world is the default one with some mechanism changed (``params.yaml: robustness.worlds``), run
once per seed (``robustness.seeds``). :mod:`components.robustness.settings` turns a (world, seed)
into the params of its run; :mod:`components.robustness.table` reads each run's evaluation into
one table (JSON, Markdown, a figure). The DVC sweep (``python -m pipelines.sweep``, ``make
robustness``) and the Kubeflow pipeline (``pipelines/robustness.py``) both use them.
"""
