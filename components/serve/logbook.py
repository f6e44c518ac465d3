"""Append-only parquet parts: what was served, and the feedback on it.

Rows are buffered in memory and written as one new part when ``flush_rows`` are waiting or
the oldest is ``flush_seconds`` old, and on shutdown (uvicorn turns SIGTERM into a graceful
shutdown whose last step closes the writers). A part is written under a dot-name and renamed
into place, so a reader (pyarrow, the export) never sees half a file; names carry the time,
host (the pod) and process, so replicas sharing a volume never collide.

Layout: ``<log_dir>/impressions/part-<UTC time>-<host>-<pid>-<n>.parquet`` and the same under
``feedback/``. Schemas: :data:`IMPRESSIONS` and :data:`FEEDBACK` (docs/serving.md).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components.contract import UTC_TS

log = logging.getLogger("encore.serve.logbook")

OUTCOMES = [
    pa.field("streamed", pa.bool_()),
    pa.field("ms_played", pa.int64()),
    pa.field("skipped", pa.bool_()),
    pa.field("saved", pa.bool_()),
]
# served impressions: the contract's columns the service knows, outcomes null until feedback,
# and what the export's join and an audit need (see core.impression_rows)
IMPRESSIONS = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("user_id", pa.int64()),
        pa.field("ts", UTC_TS),
        pa.field("position", pa.int64()),
        pa.field("track_id", pa.int64()),
        pa.field("policy_id", pa.int64()),
        pa.field("propensity", pa.float64()),
        *OUTCOMES,
        pa.field("policy_probability", pa.float64()),
        pa.field("explored", pa.bool_()),
        pa.field("experiment_id", pa.int64()),
        pa.field("arm", pa.string()),
        pa.field("alias", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("temperature", pa.float64()),
        pa.field("epsilon", pa.float64()),
        pa.field("cold_start", pa.bool_()),
    ]
)
FEEDBACK = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("ts", UTC_TS),
        *OUTCOMES,
    ]
)


class PartWriter:
    """Buffered, append-only parquet parts of one table under ``directory``."""

    def __init__(
        self,
        directory: Path,
        schema: pa.Schema,
        flush_rows: int,
        flush_seconds: float,
        on_write: Callable[[int], None] = lambda rows: None,
    ):
        self.directory, self.schema = Path(directory), schema
        self.flush_rows, self.flush_seconds, self.on_write = flush_rows, flush_seconds, on_write
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._chunks: list[dict] = []
        self._rows, self._oldest = 0, 0.0
        self._seq = 0
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = f"part-{{time}}-{_safe(socket.gethostname())}-{os.getpid()}"

    @property
    def buffered(self) -> int:
        return self._rows

    def append(self, columns: dict[str, np.ndarray | list]) -> None:
        """Buffer rows given as equal-length columns (missing schema columns are null)."""
        rows = len(next(iter(columns.values())))
        with self._lock:
            if not self._chunks:
                self._oldest = time.monotonic()
            self._chunks.append(columns)
            self._rows += rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"log-{self.directory.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        tick = min(1.0, self.flush_seconds / 4)
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._rows and (
                self._rows >= self.flush_rows or time.monotonic() - self._oldest >= self.flush_seconds
            ):
                self.flush()

    def flush(self) -> Path | None:
        """Write everything buffered as one new part; the part's path, or None if nothing was."""
        with self._write_lock:  # parts are numbered in order, one writer at a time
            with self._lock:
                chunks, self._chunks, rows, self._rows = self._chunks, [], self._rows, 0
            if not chunks:
                return None
            table = self._table(chunks)
            self._seq += 1
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            name = f"{self._prefix.format(time=stamp)}-{self._seq:06d}.parquet"
            tmp = self.directory / f".{name}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, self.directory / name)
        self.on_write(rows)
        log.info("log part written", extra={"table": self.directory.name, "rows": rows, "part": name})
        return self.directory / name

    def _table(self, chunks: list[dict]) -> pa.Table:
        n = sum(len(next(iter(c.values()))) for c in chunks)
        arrays = []
        for field in self.schema:
            if field.name not in chunks[0]:
                arrays.append(pa.nulls(n, field.type))
                continue
            values = np.concatenate([np.asarray(c[field.name]) for c in chunks])
            if pa.types.is_timestamp(field.type):
                arrays.append(pa.array(values.astype(np.int64)).cast(field.type))
            else:
                arrays.append(pa.array(values, type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def close(self) -> None:
        """Stop the timer and write what is left (called last on shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name) or "host"
