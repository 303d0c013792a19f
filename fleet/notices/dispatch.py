"""Dispatch: ready messages sent exactly once, by any number of dispatchers.

:class:`Dispatcher` claims ready messages under a lease (:mod:`fleet.core.leases`:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends each through its channel's transport
and marks it sent only while it still holds the lease. A dispatcher killed mid-batch
leaves its messages ``sending``; when the lease runs out another one takes them and
sends them again with the same id, which the folder and the work list recognise
(nothing written twice) and which an email keeps as its ``Message-ID``. Failures retry
with backoff (past quiet hours), then fail with their error kept.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, or_, select, update

from fleet.core.db import writer
from fleet.core.events import emit
from fleet.core.leases import Backoff, Leased, worker_identity
from fleet.core.masking import redact_addresses
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES, now
from fleet.core.money import format_minor
from fleet.core.policy import NoticePolicy
from fleet.notices.channels import Outgoing, Transport, TransportError
from fleet.notices.compose import ComposeResult, compose
from fleet.notices.contact import next_allowed

__all__ = ["DispatchResult", "Dispatcher"]

LEASED = Leased(MESSAGES, "sending")

_MESSAGE_SENT = (
    update(MESSAGES)
    .where(LEASED.held(bindparam("mid"), bindparam("owner")))
    .values(
        status="sent", sent_at=bindparam("at"), provider_ref=bindparam("ref"),
        transport=bindparam("via"), error=None, lease_until=None,
    )
)  # fmt: skip
_NOTICES_SENT = (
    update(NOTICES).where(NOTICES.c.message_id == bindparam("mid")).values(status="sent")
)

# -- dispatch -----------------------------------------------------------------------------


@dataclass
class DispatchResult:
    composed: ComposeResult = field(default_factory=ComposeResult)
    sent: int = 0
    retried: int = 0
    failed: int = 0
    fell_back: int = 0
    """SMS with no receipt within the window, their notices queued on the next channel."""
    by_channel: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)

    def summary(self, sms_currency: str, transports: Mapping[str, Transport]) -> dict[str, Any]:
        """The run in figures (``notices dispatch --format json``)."""
        c = self.composed
        return {
            "composed": c.messages,
            "notices": c.notices,
            "deferred": c.deferred,
            "cancelled": c.cancelled,
            "sent": self.sent,
            "by_channel": dict(self.by_channel),
            "retried": self.retried,
            "failed": self.failed + c.failed,
            "fell_back": self.fell_back,
            "sms_segments": c.segments,
            "sms_cost": f"{format_minor(c.cost, sms_currency)} {sms_currency}",
            "errors": self.errors[:20],
            "transports": {ch: t.name for ch, t in transports.items()},
        }

    def problem(self) -> str | None:
        """What went wrong, in one line (``None``: every message claimed was sent): how
        many were not sent, retried later or failed for good, and the first error (a
        server down fails them all alike)."""
        failed = self.failed + self.composed.failed
        if not (self.retried or failed):
            return None
        first = self.errors[0].split(": ", 1)[-1] if self.errors else "see notices list"
        return (
            f"{self.retried + failed} messages not sent ({self.retried} to retry later, "
            f"{failed} failed): {first}"
        )

    def describe(self, sms_currency: str) -> str:
        """The run in one line."""
        c = self.composed
        channels = ", ".join(f"{ch} {n}" for ch, n in sorted(self.by_channel.items())) or "none"
        return (
            f"composed {c.messages} messages from {c.notices} notices (deferred {c.deferred}, "
            f"cancelled {c.cancelled}); sent {self.sent} ({channels}); retrying {self.retried}; "
            f"failed {self.failed + c.failed}; SMS {c.segments} segments, "
            f"{format_minor(c.cost, sms_currency)} {sms_currency}"
        )


class Dispatcher:
    """Sends ready messages; many may run at once, on one database."""

    def __init__(
        self,
        engine: Engine,
        policy: NoticePolicy,
        transports: Mapping[str, Transport],
        *,
        worker: str | None = None,
        lease_s: float = 60.0,
        batch: int = 200,
        receipt_window_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.transports = transports
        self.worker = worker_identity(worker)
        self.lease = timedelta(seconds=lease_s)
        self.batch = batch
        self._down: dict[str, TransportError] = {}
        """Channels whose server could not be reached in this pass: their other messages
        are not tried (each would wait for the same dead server) but rescheduled."""
        self.receipt_window_s = receipt_window_s
        """SMS with no final receipt this long after sending fall back (None: never)."""

    def claim(self, at: datetime | None = None) -> list[dict[str, Any]]:
        """Up to ``batch`` messages that are ready, or whose sender's lease ran out."""
        at = at or now()
        ready = and_(MESSAGES.c.status == "ready", MESSAGES.c.not_before <= at)
        pick = (
            select(MESSAGES.c.id)
            .where(LEASED.claimable(ready, at))
            .order_by(MESSAGES.c.id)
            .limit(self.batch)
        )
        with writer(self.engine).begin() as conn:
            rows = LEASED.claim(conn, pick, owner=self.worker, until=at + self.lease)
            if rows:
                names = {
                    r.id: r.name
                    for r in conn.execute(
                        select(MERCHANTS.c.id, MERCHANTS.c.name).where(
                            MERCHANTS.c.id.in_({m.merchant_id for m in rows})
                        )
                    )
                }
                return sorted(
                    ({**r._mapping, "merchant": names[r.merchant_id]} for r in rows),
                    key=lambda r: int(r["id"]),
                )
        return []

    def _finish(self, message: Mapping[str, Any], **values: Any) -> bool:
        """Record an outcome if this worker still holds the message; False otherwise."""
        with writer(self.engine).begin() as conn:
            done = LEASED.finish(conn, message["id"], self.worker, **values)
            if done and values["status"] == "failed":
                conn.execute(
                    update(NOTICES)
                    .where(NOTICES.c.message_id == message["id"])
                    .values(status="failed")
                )
                emit(
                    conn,
                    "notice.failed",
                    {"message": message["code"], "merchant_id": message["merchant_id"],
                     "channel": message["channel"], "kinds": list(message["kinds"]),
                     "error": redact_addresses(str(values.get("error") or ""))[:300]},
                )  # fmt: skip
        return done

    def _sent(self, message: Mapping[str, Any], ref: str, transport: str) -> bool:
        """The hot path of :meth:`_finish`: two cached statements, one short transaction."""
        with writer(self.engine).begin() as conn:
            done = conn.execute(
                _MESSAGE_SENT,
                {"mid": message["id"], "owner": self.worker, "at": now(), "ref": ref[:200],
                 "via": transport},
            ).rowcount  # fmt: skip
            if done:
                conn.execute(_NOTICES_SENT, {"mid": message["id"]})
        return bool(done)

    def send(self, message: Mapping[str, Any], result: DispatchResult) -> None:
        channel = message["channel"]
        transport = self.transports[channel]
        out = Outgoing(
            id=message["id"],
            code=message["code"],
            merchant_id=message["merchant_id"],
            merchant=message["merchant"],
            channel=channel,
            address=message["address"],
            subject=message["subject"],
            body=message["body"],
            created_at=message["created_at"],
            sender=self.policy.email_from,
        )
        try:
            down = self._down.get(channel)
            if down is not None:
                raise down
            ref = transport.send(out)
        except TransportError as exc:
            if exc.unreachable:
                self._down[channel] = exc
            error = str(exc)[:500]
            result.errors.append(f"{message['code']}: {error}")
            if not exc.retryable or message["attempts"] >= self.policy.max_attempts:
                if self._finish(message, status="failed", error=error, transport=transport.name):
                    result.failed += 1
                return
            merchant_zone = self._zone(message["merchant_id"])
            retry_at = next_allowed(
                Backoff(self.policy.backoff_s).after(now(), message["attempts"]),
                zone=merchant_zone,
                quiet=self.policy.quiet,
            )
            if self._finish(message, status="ready", not_before=retry_at, error=error):
                result.retried += 1
            return
        if self._sent(message, ref, transport.name):
            result.sent += 1
            result.by_channel[channel] += 1

    def _zone(self, merchant_id: str) -> str:
        with self.engine.connect() as conn:
            zone = conn.execute(
                select(MERCHANTS.c.timezone).where(MERCHANTS.c.id == merchant_id)
            ).scalar_one()
        return str(zone)

    def run(
        self,
        *,
        once: bool = True,
        poll_s: float = 1.0,
        stop: Callable[[], bool] = lambda: False,
        progress: Callable[[DispatchResult], None] | None = None,
    ) -> DispatchResult:
        """Compose and send until nothing is ready (``once``), or until ``stop()``. A
        server that cannot be reached ends a ``once`` run (its messages rescheduled, with
        the error); watching, it is tried again at the next poll."""
        result = DispatchResult()
        try:
            while not stop():
                self._down.clear()
                if self.receipt_window_s is not None:
                    from fleet.notices.receipts import sweep  # noqa: PLC0415

                    result.fell_back += sweep(self.engine, self.receipt_window_s)
                result.composed.add(compose(self.engine, self.policy))
                batch = self.claim()
                for message in batch:
                    self.send(message, result)
                    if progress is not None:
                        progress(result)
                if once and self._down:
                    break
                if not batch:
                    if once and not self._pending_soon():
                        break
                    time.sleep(poll_s)
        finally:
            for transport in self.transports.values():
                transport.close()
        return result

    def _pending_soon(self) -> bool:
        """Messages being sent by others, or about to be retried: worth waiting for."""
        with self.engine.connect() as conn:
            soon = now() + timedelta(seconds=max(5.0, self.policy.backoff_s * 2))
            return bool(
                conn.execute(
                    select(func.count()).where(
                        or_(
                            MESSAGES.c.status == "sending",
                            and_(MESSAGES.c.status == "ready", MESSAGES.c.not_before <= soon),
                        )
                    )
                ).scalar_one()
            )
