"""Is a local service answering? Integration tests skip (with the reason) only when it is not."""

from __future__ import annotations

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


def require(host: str, port: int, what: str) -> None:
    if not answers(host, port):
        pytest.skip(f"{what} does not answer on {host}:{port}; start it to run this integration test")


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh, uniquely named database on the local PostgreSQL, dropped afterwards
    (skips the test, with the reason, when PostgreSQL does not answer)."""
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
