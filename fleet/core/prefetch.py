"""Rows of a streamed query fetched one batch ahead, by a thread, while the caller works
on the current batch.

A server-side cursor (``yield_per`` on PostgreSQL) asks for the next batch only when the
last one is used up, so the server computes while the client waits and the client works
while the server waits: a million flagged terminals cost the sum of both. Fetched ahead,
the server's next batch is computed (and carried over the socket) while the client words
the current one. The driver waits on the socket without the GIL, so the two overlap.

On PostgreSQL only: :func:`ahead` returns SQLite's rows in line. ``sqlite3`` releases the
GIL only around each row's step and needs it back to build the row, so a thread fetching
ahead waits for the GIL the wording holds rather than overlapping with it: measured at
100,000 terminals (load 16-21), fetched ahead cost 8-12 % more CPU and no less wall time
(docs/performance.md).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator
from typing import Any

from sqlalchemy import CursorResult

__all__ = ["ahead"]

_END = object()


def ahead(result: CursorResult[Any], *, batches: int = 2) -> Generator[Any, None, None]:
    """The rows of ``result`` (executed with ``yield_per``), at most ``batches`` batches
    fetched ahead of the one being read; in line on SQLite.

    Closing the iterator early (a page that stops) stops the fetching thread before it
    returns, so the connection is the caller's again; an error of the fetch is raised in
    the caller's thread, where the rows are read.
    """
    if result.dialect.name == "sqlite":
        yield from result
        return
    ready: queue.Queue[Any] = queue.Queue(maxsize=batches)
    stop = threading.Event()
    failed: list[BaseException] = []

    def fetch() -> None:
        try:
            for batch in result.partitions():
                if stop.is_set():
                    return
                ready.put(batch)
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)
        finally:
            ready.put(_END)

    thread = threading.Thread(target=fetch, name="rows-ahead", daemon=True)
    thread.start()
    try:
        while (batch := ready.get()) is not _END:
            yield from batch
        if failed:
            raise failed[0]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a fetch waiting on a full queue
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
        thread.join()
