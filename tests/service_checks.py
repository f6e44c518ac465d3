"""Is a local service answering? Integration tests need the local PostgreSQL and Redis.

A dead service fails the test (CI must never turn green by skipping what it was meant to
check). A developer without the services can opt into skipping, with the reason shown:
``ENCORE_ALLOW_MISSING_SERVICES=1 make test``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


ALLOW_MISSING = "ENCORE_ALLOW_MISSING_SERVICES"


def require(host: str, port: int, what: str) -> None:
    """Fail (or, with ``ENCORE_ALLOW_MISSING_SERVICES=1``, skip) when the service is down."""
    if answers(host, port):
        return
    message = f"{what} does not answer on {host}:{port}; start it to run this integration test"
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(f"{message} ({ALLOW_MISSING}=1)")
    pytest.fail(f"{message} (or set {ALLOW_MISSING}=1 to skip integration tests locally)")


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh, uniquely named database on the local PostgreSQL, dropped afterwards
    (see :func:`require` for when PostgreSQL does not answer)."""
    require(PG_HOST, PG_PORT, "PostgreSQL")
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def postgres_url(database: str) -> str:
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
