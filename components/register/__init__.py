"""Stage ``register``: MLflow registry, aliases ``challenger``/``champion``, the gate's decision."""

from components.params import RUNTIME_SECTIONS

# every runtime section: the registered versions carry a hash of all of them (lineage)
SECTIONS = RUNTIME_SECTIONS
