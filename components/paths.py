"""Where the project's non-Python files live (accelerate configs, the Feast repository).

In a checkout they sit beside the packages; in the container images they are copied to
``$ENCORE_HOME`` (the Dockerfiles set it), because an installed package has no repo around it.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    return Path(os.environ.get("ENCORE_HOME", Path(__file__).resolve().parents[1]))
