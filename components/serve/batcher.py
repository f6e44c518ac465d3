"""Micro-batching: concurrent requests decoded together in one forward pass.

The event loop puts each request on a bounded queue and awaits its future; one worker thread
takes the first waiting request, then whatever else is queued up to ``max_size``, waiting at
most ``max_wait`` seconds for more, and hands the batch to ``handle``. Under load the queue
fills while the previous batch decodes, so batches grow with concurrency and no request waits
longer than one batch plus ``max_wait``; an idle service answers a lone request after
``max_wait``. The forward pass releases the GIL, so the event loop keeps accepting meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("encore.serve.batcher")
_STOP = object()


class Overloaded(RuntimeError):
    """The queue is full: the caller answers 503 rather than letting latency grow without bound."""


class MicroBatcher:
    def __init__(
        self,
        handle: Callable[[list[Any]], list[Any]],
        max_size: int,
        max_wait: float,
        max_queue: int,
        on_batch: Callable[[int], None] = lambda n: None,
    ):
        self.handle, self.max_size, self.max_wait = handle, max_size, max_wait
        self.on_batch = on_batch
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._work, name="batcher", daemon=True)
        self._thread.start()

    async def submit(self, item: Any) -> Any:
        """The handler's result for ``item`` (or its exception), once its batch is decoded."""
        future = self._loop.create_future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} requests already waiting") from None
        return await future

    def stop(self, timeout: float = 30.0) -> None:
        """Decode what is queued, then end the worker (uvicorn has stopped taking requests)."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, deadline = [first], time.monotonic() + self.max_wait
            while len(batch) < self.max_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list) -> None:
        items = [item for item, _ in batch]
        try:
            results: list[Any] = self.handle(items)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            log.exception("batch failed", extra={"batch_size": len(items)})
            results = [exc] * len(items)
        self.on_batch(len(items))
        # one wake-up of the event loop per batch, not per request
        self._loop.call_soon_threadsafe(_settle, [f for _, f in batch], results)


def _settle(futures: list[asyncio.Future], results: list[Any]) -> None:
    for future, result in zip(futures, results):
        if future.done():  # the client went away
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
