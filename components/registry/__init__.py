"""Library: the MLflow model registry and the promotion gate.

- :mod:`~components.registry.client` — connect, find versions by alias or fingerprint, lineage tags;
- :mod:`~components.registry.gate` — the decision (promote or hold, with reasons) and ``gate.json``;
- :mod:`~components.registry.snapshot` — the champion as a file for DVC (the ``champion`` stage's CLI).
"""
