"""Kubeflow Pipelines (v2) wrappers: thin components over the stage code, the DAG, compile and submit."""
