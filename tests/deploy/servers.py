"""Run a server the manifests describe as a local process, for the production-backend tests."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_locally(argv: list[str], port: int) -> list[str]:
    """The manifest's command line bound to loopback on ``port`` (the only flags changed)."""
    out = []
    for part in argv:
        if part.startswith("--host="):
            part = "--host=127.0.0.1"
        elif part.startswith("--port="):
            part = f"--port={port}"
        out.append(part)
    return out


@contextmanager
def serving(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int, log_path: Path
) -> Iterator[str]:
    """Start ``argv`` (listening on ``port``), wait for ``/health``, yield its URL, stop it.

    A server that exits or never turns healthy fails the test with the tail of its log."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(name, url, proc, log_path)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(name: str, url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{name} not healthy after {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
