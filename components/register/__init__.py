"""Stage ``register``: MLflow registry, aliases ``challenger``/``champion``, the gate's decision."""
