"""Library: Encore's features as Feast serves them.

- :mod:`~components.featurestore.definitions` — entities, views (keys, TTLs), services, the
  on-disk layout of the features stage's output;
- :mod:`~components.featurestore.store` — Feast glue: config, apply, materialise, offline/online reads;
- :mod:`~components.featurestore.lookup` — the online store's latest values, in memory (RL, evaluation).
"""
