"""Is a local service answering? Integration tests skip (with the reason) only when it is not."""

from __future__ import annotations

import socket

import pytest


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    if not answers(host, port):
        pytest.skip(f"{what} does not answer on {host}:{port}; start it to run this integration test")
