"""Shared helpers for the pipeline tests: tiny params as a file or as the KFP dict."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import REPO, TINY, TINY_EVAL, TINY_LOOP, TINY_REWARD, TINY_RL, TINY_SFT


def tiny_params_dict(tracking_uri: str | None = None) -> dict:
    """params.yaml with the tiny overrides applied, JSON-compatible (what KFP receives)."""
    raw = json.loads(json.dumps(yaml.safe_load((REPO / "params.yaml").read_text()), default=str))
    for dotted, value in {**TINY, **TINY_REWARD, **TINY_SFT, **TINY_RL, **TINY_EVAL, **TINY_LOOP}.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    if tracking_uri:
        raw["tracking"].update(enabled=True, uri=tracking_uri)
    return raw


def write_tiny_params(path: Path, tracking_uri: str | None = None) -> Path:
    path.write_text(yaml.safe_dump(tiny_params_dict(tracking_uri), sort_keys=False))
    return path
