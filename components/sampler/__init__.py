"""Slates as the policy service serves them, shared by the service and the evaluation.

- :mod:`~components.sampler.decoder` — next-slot logits with a K/V cache (fast GPT-2 path);
- :mod:`~components.sampler.sampling` — ε-uniform exploration over temperature sampling, with the
  per-slot propensities of what was served;
- :mod:`~components.sampler.served` — a registered policy as an A/B arm, served exactly so.
"""
