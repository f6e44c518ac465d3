"""A dead service fails an integration test; skipping needs an explicit opt-in."""

from __future__ import annotations

import socket

import pytest

from tests.service_checks import ALLOW_MISSING, require


@pytest.fixture
def dead_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_service_fails_the_test(dead_port, monkeypatch):
    monkeypatch.delenv(ALLOW_MISSING, raising=False)
    with pytest.raises(pytest.fail.Exception, match="does not answer"):
        require("127.0.0.1", dead_port, "Redis")


def test_skipping_a_dead_service_needs_the_opt_in(dead_port, monkeypatch):
    monkeypatch.setenv(ALLOW_MISSING, "1")
    with pytest.raises(pytest.skip.Exception, match=ALLOW_MISSING):
        require("127.0.0.1", dead_port, "Redis")
