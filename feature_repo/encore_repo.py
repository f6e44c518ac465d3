"""Feast repository definitions for `feast apply` from this folder.

The objects come from ``components.featurestore.definitions`` (the same code the `features`
stage applies); sources are read from ``$ENCORE_FEATURE_SOURCES`` or, by default, the DVC
workspace's ``data/features/sources``.

    cd feature_repo && feast apply && feast materialize-incremental $(date -u +%FT%T)
"""

import os
from pathlib import Path

from components.featurestore.definitions import feast_objects
from components.params import load_params

_ROOT = Path(__file__).resolve().parents[1]
_SOURCES = Path(os.environ.get("ENCORE_FEATURE_SOURCES", _ROOT / "data" / "features" / "sources"))
_objects = feast_objects(_SOURCES, load_params(_ROOT / "params.yaml").features)

user = _objects["user"]
track = _objects["track"]
artist = _objects["artist"]
user_activity = _objects["user_activity"]
track_stats = _objects["track_stats"]
user_artist = _objects["user_artist"]
user_history = _objects["user_history"]
reward_model = _objects["reward_model"]
policy = _objects["policy"]
