"""Every attempt on a terminal is kept (``push_attempt``): a fee-table push or a key change,
its worker and rollout job, when, and its outcome or error.

:func:`recorded` wraps one attempt: any failure inside is kept as a failed attempt and
raised as the operation's own :class:`~fleet.device.session.DeviceError` class (link and
OS errors retryable, refusals not). A terminal that turns out to hold a key the fleet never
issued has its reported key versions recorded too, so that ``posfleet keys list`` and the
reports show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, update

from fleet.core.db import writer
from fleet.core.models import ATTEMPTS, TERMINALS, now
from fleet.device.keyring import UnissuedKeyError
from fleet.device.session import DeviceError
from protocols.errors import LinkError, ProtocolError

__all__ = ["Attempt", "recorded"]


@dataclass(slots=True)
class Attempt:
    """One attempt: on ``serial``, of ``kind`` (``fees``: table ``version``; ``key``: key
    ``version``), by ``worker`` for rollout job ``job_id``; for a download, the block it
    started at and the blocks it sent so far (what a failed attempt records)."""

    engine: Engine
    serial: str
    version: int
    worker: str = ""
    job_id: int | None = None
    kind: str = "fees"
    started: datetime = field(default_factory=now)
    resumed_from: int | None = None
    """The block the download started at (None: nothing sent yet)."""
    sent: int = 0
    """Blocks sent so far."""

    def progress(self, then: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
        """A download progress callback that counts the blocks sent, then calls ``then``."""

        def seen(stored: int, count: int) -> None:
            if self.resumed_from is None:
                self.resumed_from = stored  # the first call: where the download starts
            else:
                self.sent += 1
            if then is not None:
                then(stored, count)

        return seen

    def row(self, finished: datetime, **values: Any) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "serial": self.serial,
            "kind": self.kind,
            "version": self.version,
            "worker": self.worker,
            "started_at": self.started,
            "finished_at": finished,
            **values,
        }

    def insert_success(self, conn: Connection, finished: datetime, **values: Any) -> None:
        """Keep the attempt as done (in the caller's transaction)."""
        conn.execute(insert(ATTEMPTS).values(self.row(finished, **values)))

    def record_failure(self, error: str) -> None:
        """Keep a failed attempt with the blocks it sent before it failed."""
        row = self.row(
            now(), outcome="error", error=error[:500],
            resumed_from=self.resumed_from or 0, blocks_sent=self.sent,
        )  # fmt: skip
        with writer(self.engine).begin() as conn:
            conn.execute(insert(ATTEMPTS).values(row))


def _record_unissued(attempt: Attempt, exc: UnissuedKeyError) -> None:
    with writer(attempt.engine).begin() as conn:
        conn.execute(
            update(TERMINALS)
            .where(TERMINALS.c.serial == attempt.serial)
            .values(key_version=exc.held.current, key_next=exc.held.next, last_seen=now())
        )


@contextmanager
def recorded(attempt: Attempt, error: type[DeviceError]) -> Iterator[None]:
    """Any failure inside: kept as a failed attempt and raised as ``error``."""
    try:
        yield
    except error as exc:
        attempt.record_failure(str(exc))
        raise
    except DeviceError as exc:
        if isinstance(exc, UnissuedKeyError):
            _record_unissued(attempt, exc)
        attempt.record_failure(str(exc))
        raise error(str(exc), retryable=exc.retryable, reason=exc.reason) from exc
    except (ProtocolError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        attempt.record_failure(message)
        raise error(message, retryable=isinstance(exc, OSError | LinkError)) from exc
