"""The policy service: ``python -m components.serve`` (FastAPI under uvicorn).

Serves slates from the registry aliases the experiment's arms name, with the listeners'
features from the Feast online store; assigns arms by a salted hash; samples with ε-uniform
exploration and returns (and logs) per-slot propensities; writes served impressions and
feedback as append-only parquet parts, which ``python -m components.serve.export`` turns
into raw-log contract tables. See docs/serving.md.

- :mod:`~components.serve.core` — pure functions: assignment, policy_id, prompts, log rows (a
  simulated serving loop imports the same functions);
- :mod:`components.sampler` (a library, shared with the evaluation's A/B test) — the decoder
  with a K/V cache and the ε-uniform sampling with per-slot propensities;
- :mod:`~components.serve.policies` — aliases -> loaded policies, polled;
- :mod:`~components.serve.batcher` — micro-batching; :mod:`~components.serve.logbook` — log parts;
- :mod:`~components.serve.service` + :mod:`~components.serve.app` — the process and its HTTP API;
- :mod:`~components.serve.export` — served parts + feedback -> contract tables.
"""

SECTIONS = ("serve", "features", "register")  # the params sections the service reads (+ tracking)
