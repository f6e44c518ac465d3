"""Library: the generative recommender (a causal LM over track tokens).

- :mod:`~components.policy.vocab` — item vocabulary and prompt layout;
- :mod:`~components.policy.model` — build (from config or a local checkpoint), save layout, load;
- :mod:`~components.policy.decoding` — constrained decoding and per-slot probabilities;
- :mod:`~components.policy.generative` — the policy as ``recommend(contexts) -> slates``;
- :mod:`~components.policy.sequences` — listening sequences (prompt, next k new plays) and splits;
- :mod:`~components.policy.metrics` — Recall/NDCG@k, popularity baseline, slate properties;
- :mod:`~components.policy.pyfunc` — the MLflow pyfunc wrapper.

Trained by ``sft_policy`` and ``rlhf_policy``; scored by ``evaluate``; served from the registry.
"""
