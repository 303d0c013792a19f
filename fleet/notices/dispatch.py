"""Dispatch: ready messages sent exactly once, by any number of dispatchers.

:class:`Dispatcher` claims ready messages under a lease (:mod:`fleet.core.leases`:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sends each through its channel's transport
and marks it sent only while it still holds the lease. A dispatcher killed mid-batch
leaves its messages ``sending``; when the lease runs out another one takes them and
sends them again with the same id, which the folder and the work list recognise
(nothing written twice) and which an email keeps as its ``Message-ID``. Failures retry
with backoff (past quiet hours), then fail with their error kept.

Over 400 lines because :class:`Dispatcher` is the one exactly-once send loop — claim, send
over its connections, record, fall back — whose parts share the lease and the down-server
state.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from fleet.core.db import writer
from fleet.core.events import emit
from fleet.core.leases import Backoff, worker_identity
from fleet.core.masking import redact_addresses
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES, now
from fleet.core.money import format_minor
from fleet.core.policy import NoticePolicy
from fleet.notices.channels import Outgoing, SmtpTransport, Transport, TransportError
from fleet.notices.compose import ComposeResult, compose_some
from fleet.notices.contact import next_allowed
from fleet.notices.recording import LEASED, GroupRecorder, Recorder, Sent

__all__ = ["DispatchResult", "Dispatcher"]


@dataclass(slots=True)
class _Sent:
    """A sender's report: the message, what the transport returned, or its error."""

    message: Mapping[str, Any]
    ref: str
    via: str
    transport: Transport
    error: TransportError | None = None
    recorded: bool = False
    """Marked sent (False: another dispatcher holds the message now)."""
    skipped: bool = False
    """Not sent: its lease ran out before its turn."""
    fatal: BaseException | None = None
    """Sent, but the outcome could not be recorded (the database went away): the run
    stops with this error, and the message, still ``sending``, is taken over later."""


class _Locked:
    """A transport shared by several senders: one send at a time."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.name = transport.name
        self._lock = threading.Lock()

    def send(self, out: Outgoing) -> str:
        with self._lock:
            return self.transport.send(out)

    def close(self) -> None:
        pass


_CLAIMED = tuple(
    MESSAGES.c[name]
    for name in ("id", "code", "merchant_id", "channel", "address", "subject", "body",
                 "created_at", "attempts", "kinds")
)  # fmt: skip
"""What sending and recording a message need of it (a claim returns only these)."""

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
        connections: int = 1,
        receipt_window_s: float | None = None,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.engine = engine
        self.policy = policy
        self.transports = transports
        self.worker = worker_identity(worker)
        self.lease = timedelta(seconds=lease_s)
        self.batch = batch
        self.connections = connections
        self._flying: dict[int, float] = {}
        """Messages claimed and not yet finished → until when (monotonic) the lease is
        surely ours."""
        self._down: dict[str, TransportError] = {}
        """Channels whose server could not be reached in this pass: their other messages
        are not tried (each would wait for the same dead server) but rescheduled."""
        self.receipt_window_s = receipt_window_s
        """SMS with no final receipt this long after sending fall back (None: never)."""
        self._writing: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        """Held by this dispatcher's writes on SQLite (one writer at a time there): its
        threads wait for each other on it, not in SQLite's busy loop, which sleeps in
        steps of up to 100 ms."""

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
        with self._writing, writer(self.engine).begin() as conn:
            rows = LEASED.claim(
                conn, pick, owner=self.worker, until=at + self.lease, returning=_CLAIMED
            )
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
        with self._writing, writer(self.engine).begin() as conn:
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
        """The hot path of :meth:`_finish` (outside :meth:`run`, whose senders share a
        :class:`~fleet.notices.recording.GroupRecorder`)."""
        recorder = Recorder(self.engine, self.worker)
        try:
            return recorder.record([Sent(message["id"], ref, transport)])[0]
        finally:
            recorder.close()

    def outgoing(self, message: Mapping[str, Any]) -> Outgoing:
        return Outgoing(
            id=message["id"],
            code=message["code"],
            merchant_id=message["merchant_id"],
            merchant=message["merchant"],
            channel=message["channel"],
            address=message["address"],
            subject=message["subject"],
            body=message["body"],
            created_at=message["created_at"],
            sender=self.policy.email_from,
        )

    def send(self, message: Mapping[str, Any], result: DispatchResult) -> None:
        """Send one message and record its outcome (one at a time; :meth:`run` overlaps
        sending with the bookkeeping)."""
        transport = self.transports[message["channel"]]
        try:
            down = self._down.get(message["channel"])
            if down is not None:
                raise down
            ref = transport.send(self.outgoing(message))
        except TransportError as exc:
            self._failed(message, exc, transport, result)
            return
        if self._sent(message, ref, transport.name):
            result.sent += 1
            result.by_channel[message["channel"]] += 1

    def _failed(
        self,
        message: Mapping[str, Any],
        exc: TransportError,
        transport: Transport,
        result: DispatchResult,
    ) -> None:
        if exc.unreachable:
            self._down[message["channel"]] = exc
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
        """Compose and send until nothing is ready (``once``), or until ``stop()``.

        Sending overlaps the bookkeeping: :attr:`connections` sender threads (an SMTP
        transport: one connection each) send what this thread claimed and mark each
        message sent as soon as the server took it, while this thread composes (a batch of
        merchants at a time, :func:`~fleet.notices.compose.compose_some`) and claims the
        next batch and the other senders keep sending. A dispatcher killed between a
        server's 250 and that commit leaves the message ``sending``; it is sent again, with
        the same Message-ID, once its lease runs out. The window: at most one message per
        connection.

        A server that cannot be reached ends a ``once`` run (its messages rescheduled, with
        the error); watching, it is tried again at the next claim."""
        result = DispatchResult()
        todo: queue.SimpleQueue[Mapping[str, Any] | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[_Sent] = queue.SimpleQueue()
        records = GroupRecorder(self.engine, self.worker, self._writing, self.connections > 1)
        senders = [
            threading.Thread(
                target=self._sender,
                args=(own, todo, done, records),
                name=f"dispatch-{i}",
                daemon=True,
            )
            for i, own in enumerate(self._per_connection())
        ]
        for t in senders:
            t.start()
        lease_s = self.lease.total_seconds()
        next_renew = time.monotonic() + lease_s / 3
        compose_from = ""  # composing goes on from this merchant ("": a new pass)
        try:
            while not stop():
                if once and self._down:
                    if not self._flying:
                        break  # the server is down: the rest waits for the next run
                elif len(self._flying) <= self.batch // 2:
                    self._down.clear()
                    if self.receipt_window_s is not None:
                        from fleet.notices.receipts import sweep  # noqa: PLC0415

                        with self._writing:
                            result.fell_back += sweep(self.engine, self.receipt_window_s)
                    with self._writing:
                        composed, compose_from = compose_some(
                            self.engine, self.policy, after=compose_from, merchants=self.batch
                        )
                    result.composed.add(composed)
                    batch = self.claim()
                    for message in batch:
                        if message["id"] in self._flying:
                            continue  # ours already (its lease ran out while it waited)
                        self._flying[message["id"]] = time.monotonic() + 0.8 * lease_s
                        todo.put(message)
                    if not batch and not self._flying:
                        if compose_from:
                            continue  # the rest of this pass over the merchants first
                        if once and not self._pending_soon():
                            break
                        time.sleep(poll_s)
                        continue
                self._collect(done, result, wait=0.02)
                if self._flying and time.monotonic() >= next_renew:
                    next_renew = time.monotonic() + lease_s / 3
                    self._renew()
                if progress is not None:
                    progress(result)
        finally:
            for _ in senders:
                todo.put(None)
            for t in senders:
                t.join()
            records.close()
            self._collect(done, result, wait=0.0)
            for transport in self.transports.values():
                transport.close()
        return result

    def _collect(self, done: queue.SimpleQueue[_Sent], result: DispatchResult, wait: float) -> int:
        """Record what the senders finished, ``wait`` s from now: all of it at once (a
        sender finishes a message every millisecond or so; waking up for each would cost
        more than recording them)."""
        if wait:
            time.sleep(wait)
        items: list[_Sent] = []
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(done.get_nowait())
        for d in items:
            if d.fatal is not None:
                raise d.fatal
            self._flying.pop(d.message["id"], None)
            if d.skipped:
                continue
            if d.error is not None:
                self._failed(d.message, d.error, d.transport, result)
            elif d.recorded:
                result.sent += 1
                result.by_channel[d.message["channel"]] += 1
        return len(items)

    def _renew(self) -> None:
        """Extend the leases of the messages claimed and not yet sent or recorded; a
        message whose lease is gone is not sent by this dispatcher."""
        ids = list(self._flying)
        at = now()
        with self._writing, writer(self.engine).begin() as conn:
            kept = set(
                conn.execute(
                    update(MESSAGES)
                    .where(
                        MESSAGES.c.id.in_(ids),
                        MESSAGES.c.lease_owner == self.worker,
                        MESSAGES.c.status == "sending",
                    )
                    .values(lease_until=at + self.lease)
                    .returning(MESSAGES.c.id)
                ).scalars()
            )
        until = time.monotonic() + 0.8 * self.lease.total_seconds()
        for mid in ids:
            if mid in self._flying:
                self._flying[mid] = until if mid in kept else 0.0

    def _per_connection(self) -> list[Mapping[str, Transport]]:
        """Each sender's transports: its own copy of a transport that can make one (an
        SMTP connection each), the one shared (behind a lock) otherwise."""
        shared = {ch: _Locked(t) for ch, t in self.transports.items()}
        own: list[Mapping[str, Transport]] = [self.transports]
        for _ in range(self.connections - 1):
            own.append(
                {ch: t.clone() if isinstance(t, SmtpTransport) else shared[ch]
                 for ch, t in self.transports.items()}
            )  # fmt: skip
        if self.connections > 1:
            own[0] = {
                ch: t if isinstance(t, SmtpTransport) else shared[ch]
                for ch, t in self.transports.items()
            }
        self._clones = [t for m in own[1:] for t in m.values() if isinstance(t, SmtpTransport)]
        return own

    def _sender(
        self,
        transports: Mapping[str, Transport],
        todo: queue.SimpleQueue[Mapping[str, Any] | None],
        done: queue.SimpleQueue[_Sent],
        records: GroupRecorder,
    ) -> None:
        try:
            while (message := todo.get()) is not None:
                transport = transports[message["channel"]]
                if time.monotonic() > self._flying.get(message["id"], 0.0):
                    # its lease is (nearly) out: another dispatcher may take it now
                    done.put(_Sent(message, "", transport.name, transport, skipped=True))
                    continue
                try:
                    down = self._down.get(message["channel"])
                    if down is not None:
                        raise down  # its server is down: rescheduled, not tried
                    ref = transport.send(self.outgoing(message))
                except TransportError as exc:
                    if exc.unreachable:
                        self._down[message["channel"]] = exc
                    done.put(_Sent(message, "", transport.name, transport, exc))
                    continue
                # recorded at once, by this sender: a kill repeats at most the one message
                # each connection has sent and not yet recorded
                try:
                    held = records.record(Sent(message["id"], ref, transport.name))
                except Exception as exc:  # the database is gone: the run ends with it
                    done.put(_Sent(message, ref, transport.name, transport, fatal=exc))
                    return
                done.put(_Sent(message, ref, transport.name, transport, recorded=held))
        finally:
            for t in transports.values():
                if t in self._clones:
                    t.close()

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
