"""The notices outbox: queue, compose, dispatch exactly once, verify.

1. **Queue** — :func:`queue` writes a notice in the caller's transaction, the one of the
   event that causes it (a swap, a publication), so no event is without its notice.
2. **Compose** — :func:`compose` turns due notices into messages under the contact rules
   (:mod:`fleet.notices.contact`): the channel; quiet hours and the rate limit defer (never drop);
   notices to one merchant that are due together become one digest. Each message gets a
   random, unique verification code. One transaction: a notice is in at most one message.
3. **Dispatch** — :class:`Dispatcher` claims ready messages under a lease (``FOR UPDATE
   SKIP LOCKED`` on PostgreSQL), sends each through its channel's transport and marks it
   sent only while it still holds the lease. A dispatcher killed mid-batch leaves its
   messages ``sending``; when the lease runs out another one takes them and sends them
   again with the same id, which the folder and the work list recognise (nothing written
   twice) and which an email keeps as its ``Message-ID``. Failures retry with backoff
   (past quiet hours), then fail with their error kept.
4. **Verify** — :func:`verify` tells the call centre whether a code is one we sent, and
   what was sent to whom and when.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.masking import mask_address
from fleet.core.models import CONTACT_EVENTS, MERCHANTS, MESSAGES, NOTICES, now
from fleet.core.policy import NoticePolicy
from fleet.core.values import CHANNELS, parse_money
from fleet.notices.channels import Outgoing, Transport, TransportError
from fleet.notices.contact import MANDATORY, choose_channel, in_quiet_hours, next_allowed
from fleet.notices.sms import cost
from fleet.notices.text import NoticeItem, render, template_language

__all__ = [
    "ComposeResult",
    "ContactError",
    "DispatchResult",
    "Dispatcher",
    "Verification",
    "compose",
    "mask_address",
    "new_code",
    "normalise_code",
    "queue",
    "record_contact",
    "verify",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base 32: no I, L, O or U, so a code read out on the phone is unambiguous."""
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


class ContactError(Exception):
    """A merchant can't be reached or a contact change is not valid."""


def new_code() -> str:
    """A verification code: 50 random bits from :mod:`secrets`, e.g. ``7KQ2M-9XD4T``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_code(text: str) -> str:
    """What a caller reads out, as stored: case, spaces and dashes don't matter, and
    O/I/L read as 0/1.

    >>> normalise_code(" 7kq2m 9xd4t "), normalise_code("7KQ2M-9XD4T")
    ('7KQ2M-9XD4T', '7KQ2M-9XD4T')
    >>> normalise_code("o1l2i-34567")
    '01121-34567'
    """
    raw = "".join(c for c in text.upper() if c.isalnum()).translate(_READ_AS)
    return f"{raw[:5]}-{raw[5:]}" if len(raw) == 10 else raw


def queue(
    conn: Connection,
    *,
    kind: str,
    merchant_id: str,
    ref: str,
    payload: Mapping[str, Any],
    at: datetime | None = None,
    not_before: datetime | None = None,
    channel: str | None = None,
) -> None:
    """Queue one notice in the caller's transaction (once per kind, merchant and event)."""
    conn.execute(
        insert(NOTICES).values(
            kind=kind,
            merchant_id=merchant_id,
            ref=ref,
            payload=dict(payload),
            created_at=at or now(),
            status="queued",
            not_before=not_before,
            channel=channel,
        )
    )


# -- compose ------------------------------------------------------------------------------


@dataclass
class ComposeResult:
    messages: int = 0
    notices: int = 0
    deferred: int = 0
    cancelled: int = 0
    failed: int = 0
    segments: int = 0
    cost: int = 0
    """SMS cost of the composed messages, minor units of the policy's SMS currency."""

    def add(self, other: ComposeResult) -> None:
        for name in ("messages", "notices", "deferred", "cancelled", "failed", "segments"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost += other.cost


def compose(
    engine: Engine, policy: NoticePolicy, *, at: datetime | None = None, merchants: int = 2000
) -> ComposeResult:
    """Compose messages for every merchant with a notice due, ``merchants`` per
    transaction. Safe to run from several dispatchers at once."""
    total = ComposeResult()
    at = at or now()
    after = ""
    while True:
        result, after = _compose_some(engine, policy, at, after, merchants)
        total.add(result)
        if not after:
            return total


def _compose_some(
    engine: Engine, policy: NoticePolicy, at: datetime, after: str, limit: int
) -> tuple[ComposeResult, str]:
    result = ComposeResult()
    hold = timedelta(seconds=policy.digest_s)
    window = timedelta(seconds=policy.window_s)
    price = parse_money(policy.sms_price, policy.sms_currency)
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # one composer at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(72610601)"))
        due = or_(NOTICES.c.not_before.is_(None), NOTICES.c.not_before <= at)
        ids = (
            conn.execute(
                select(NOTICES.c.merchant_id)
                .where(NOTICES.c.status == "queued", due, NOTICES.c.merchant_id > after)
                .group_by(NOTICES.c.merchant_id)
                .order_by(NOTICES.c.merchant_id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        if not ids:
            return result, ""
        notices = conn.execute(
            select(NOTICES)
            .where(NOTICES.c.status == "queued", due, NOTICES.c.merchant_id.in_(ids))
            .order_by(NOTICES.c.merchant_id, NOTICES.c.id)
        ).all()
        merchants = {
            r.id: r for r in conn.execute(select(MERCHANTS).where(MERCHANTS.c.id.in_(ids))).all()
        }
        sent: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for r in conn.execute(
            select(MESSAGES.c.merchant_id, MESSAGES.c.channel, MESSAGES.c.not_before).where(
                MESSAGES.c.merchant_id.in_(ids),
                MESSAGES.c.status != "failed",
                MESSAGES.c.not_before > at - window,
            )
        ):
            sent[(r.merchant_id, r.channel)].append(r.not_before)
        by_merchant: dict[str, list[Any]] = defaultdict(list)
        for n in notices:
            by_merchant[n.merchant_id].append(n)
        pending: list[tuple[dict[str, Any], list[int]]] = []
        for merchant_id, items in by_merchant.items():
            ready = any((n.not_before is not None) or (n.created_at + hold <= at) for n in items)
            if ready:
                _compose_merchant(
                    conn, policy, merchants[merchant_id], items, at, sent, price, result, pending
                )
        _store(conn, pending)
    return result, ids[-1] if len(ids) == limit else ""


def _compose_merchant(
    conn: Connection,
    policy: NoticePolicy,
    merchant: Any,
    items: list[Any],
    at: datetime,
    sent: dict[tuple[str, str], list[datetime]],
    price: int,
    result: ComposeResult,
    pending: list[tuple[dict[str, Any], list[int]]],
) -> None:
    groups: dict[str | None, list[Any]] = defaultdict(list)
    for n in items:
        forced = n.channel  # a follow-up call task, unless the merchant can't take calls
        if forced is not None and (forced in (merchant.opt_out or []) or not merchant.phone):
            forced = None
        channel = forced or choose_channel(
            [n.kind],
            preferred=merchant.channels or [],
            opted_out=merchant.opt_out or [],
            phone=merchant.phone,
            email=merchant.email,
        )
        groups[channel].append(n)
    for channel, group in groups.items():
        if channel is None:
            mandatory = [n.id for n in group if n.kind in MANDATORY]
            optional = [n.id for n in group if n.kind not in MANDATORY]
            if optional:
                _set_notices(conn, optional, status="cancelled", note="opted out of every channel")
                result.cancelled += len(optional)
            if mandatory:
                _set_notices(conn, mandatory, status="failed", note="no contact data")
                result.failed += len(mandatory)
            continue
        when = next_allowed(
            at,
            zone=merchant.timezone,
            quiet=policy.quiet,
            sent=sent[(merchant.id, channel)],
            limit=policy.max_per_window,
            window=timedelta(seconds=policy.window_s),
        )
        if when > at:
            why = (
                " and ".join(
                    what
                    for what, applies in (
                        ("quiet hours", in_quiet_hours(at, merchant.timezone, policy.quiet)),
                        (
                            f"at most {policy.max_per_window} {channel} messages per window",
                            len(sent[(merchant.id, channel)]) >= policy.max_per_window,
                        ),
                    )
                    if applies
                )
                or "contact rules"
            )
            conn.execute(
                update(NOTICES)
                .where(NOTICES.c.id.in_([n.id for n in group]))
                .values(not_before=when, note=f"deferred to {when.isoformat()}: {why}")
            )
            result.deferred += len(group)
            continue
        _message(conn, policy, merchant, channel, group, at, price, result, pending)
        sent[(merchant.id, channel)].append(at)


def _set_notices(conn: Connection, ids: list[int], **values: Any) -> None:
    conn.execute(update(NOTICES).where(NOTICES.c.id.in_(ids)).values(**values))


def _message(
    conn: Connection,
    policy: NoticePolicy,
    merchant: Any,
    channel: str,
    group: list[Any],
    at: datetime,
    price: int,
    result: ComposeResult,
    pending: list[tuple[dict[str, Any], list[int]]],
) -> None:
    """One message with as many of ``group`` as fit (an SMS stays within the segment
    limit; the rest wait for the next message). An SMS too long alone fails its notice."""
    address = merchant.email if channel == "email" else merchant.phone
    language = template_language(merchant.language)
    code = new_code()
    taken: list[Any] = []
    rendered = None
    for n in group:
        attempt = render(
            [NoticeItem(x.kind, x.payload) for x in [*taken, n]],
            channel=channel,
            language=language,
            zone=merchant.timezone,
            merchant=merchant.name,
            code=code,
            policy=policy,
        )
        if attempt.sms is not None and attempt.sms.segments > policy.sms_max_segments:
            if not taken:
                _set_notices(
                    conn,
                    [n.id],
                    status="failed",
                    note=f"SMS of {attempt.sms.segments} segments is over the policy's limit "
                    f"of {policy.sms_max_segments}",
                )
                result.failed += 1
                continue
            break  # the rest wait for the next message
        taken.append(n)
        rendered = attempt
    if rendered is None:
        return
    values = {
        "code": code,
        "merchant_id": merchant.id,
        "channel": channel,
        "address": address,
        "language": language,
        "kinds": [n.kind for n in taken],
        "subject": rendered.subject,
        "body": rendered.body,
        "sms_encoding": rendered.sms.encoding if rendered.sms else None,
        "segments": rendered.sms.segments if rendered.sms else None,
        "cost": cost(rendered.sms, price) if rendered.sms else None,
        "cost_currency": policy.sms_currency if rendered.sms else None,
        "status": "ready",
        "attempts": 0,
        "not_before": at,
        "created_at": at,
    }
    pending.append((values, [n.id for n in taken]))
    result.messages += 1
    result.notices += len(taken)
    if rendered.sms:
        result.segments += rendered.sms.segments
        result.cost += values["cost"]


_NOTICE_COMPOSED = (
    update(NOTICES)
    .where(NOTICES.c.id == bindparam("notice"))
    .values(status="composed", message_id=bindparam("message"), note=None)
)


def _store(conn: Connection, pending: list[tuple[dict[str, Any], list[int]]]) -> None:
    """Insert the composed messages and link their notices, in bulk. A code already taken
    (2^-50 per pair) is drawn again before the insert."""
    if not pending:
        return
    codes = [values["code"] for values, _ in pending]
    taken: set[str] = set()
    for start in range(0, len(codes), 500):
        chunk = codes[start : start + 500]
        taken.update(
            conn.execute(select(MESSAGES.c.code).where(MESSAGES.c.code.in_(chunk))).scalars()
        )
    seen: set[str] = set()
    for values, _ in pending:
        code = values["code"]
        while code in taken or code in seen:
            code = new_code()
        if code != values["code"]:
            for key in ("subject", "body"):
                values[key] = values[key].replace(values["code"], code)
            values["code"] = code
        seen.add(code)
    conn.execute(insert(MESSAGES), [values for values, _ in pending])
    ids: dict[str, int] = {}
    codes = [values["code"] for values, _ in pending]
    for start in range(0, len(codes), 500):
        chunk = codes[start : start + 500]
        ids.update(
            (code, id_)
            for id_, code in conn.execute(
                select(MESSAGES.c.id, MESSAGES.c.code).where(MESSAGES.c.code.in_(chunk))
            )
        )
    conn.execute(
        _NOTICE_COMPOSED,
        [
            {"notice": notice, "message": ids[values["code"]]}
            for values, notices in pending
            for notice in notices
        ],
    )


_MESSAGE_SENT = (
    update(MESSAGES)
    .where(
        MESSAGES.c.id == bindparam("mid"),
        MESSAGES.c.status == "sending",
        MESSAGES.c.lease_owner == bindparam("owner"),
    )
    .values(
        status="sent", sent_at=bindparam("at"), provider_ref=bindparam("ref"),
        transport=bindparam("via"), error=None, lease_owner=None, lease_until=None,
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
    by_channel: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)


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
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.transports = transports
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = timedelta(seconds=lease_s)
        self.batch = batch

    def claim(self, at: datetime | None = None) -> list[dict[str, Any]]:
        """Up to ``batch`` messages that are ready, or whose sender's lease ran out."""
        at = at or now()
        claimable = or_(
            and_(MESSAGES.c.status == "ready", MESSAGES.c.not_before <= at),
            and_(MESSAGES.c.status == "sending", MESSAGES.c.lease_until < at),
        )
        inner = select(MESSAGES.c.id).where(claimable).order_by(MESSAGES.c.id).limit(self.batch)
        with writer(self.engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                inner = inner.with_for_update(skip_locked=True)
            rows = conn.execute(
                update(MESSAGES)
                .where(MESSAGES.c.id.in_(inner.scalar_subquery()))
                .values(
                    status="sending",
                    lease_owner=self.worker,
                    lease_until=at + self.lease,
                    attempts=MESSAGES.c.attempts + 1,
                )
                .returning(*MESSAGES.c)
            ).all()
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
        status = values["status"]
        with writer(self.engine).begin() as conn:
            done = conn.execute(
                update(MESSAGES)
                .where(
                    MESSAGES.c.id == message["id"],
                    MESSAGES.c.status == "sending",
                    MESSAGES.c.lease_owner == self.worker,
                )
                .values(lease_owner=None, lease_until=None, **values)
            ).rowcount
            if done and status == "failed":
                conn.execute(
                    update(NOTICES)
                    .where(NOTICES.c.message_id == message["id"])
                    .values(status=status)
                )
        return bool(done)

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
            ref = transport.send(out)
        except TransportError as exc:
            error = str(exc)[:500]
            result.errors.append(f"{message['code']}: {error}")
            if not exc.retryable or message["attempts"] >= self.policy.max_attempts:
                if self._finish(message, status="failed", error=error, transport=transport.name):
                    result.failed += 1
                return
            wait = min(self.policy.backoff_s * 2 ** (message["attempts"] - 1), 3600.0)
            merchant_zone = self._zone(message["merchant_id"])
            retry_at = next_allowed(
                now() + timedelta(seconds=wait), zone=merchant_zone, quiet=self.policy.quiet
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
        """Compose and send until nothing is ready (``once``), or until ``stop()``."""
        result = DispatchResult()
        try:
            while not stop():
                result.composed.add(compose(self.engine, self.policy))
                batch = self.claim()
                for message in batch:
                    self.send(message, result)
                    if progress is not None:
                        progress(result)
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


# -- verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    code: str
    genuine: bool
    message: dict[str, Any] | None = None
    notices: list[dict[str, Any]] = field(default_factory=list)
    merchant: str = ""

    def as_dict(self) -> dict[str, Any]:
        if not self.genuine or self.message is None:
            return {"code": self.code, "genuine": False}
        m = self.message
        return {
            "code": self.code,
            "genuine": True,
            "merchant_id": m["merchant_id"],
            "merchant": self.merchant,
            "channel": m["channel"],
            "to": mask_address(m["address"]),
            "status": m["status"],
            "composed_at": m["created_at"].isoformat(),
            "sent_at": m["sent_at"].isoformat() if m["sent_at"] else None,
            "kinds": m["kinds"],
            "subject": m["subject"],
            "body": m["body"],
            "notices": self.notices,
        }


def verify(engine: Engine, code: str, *, actor: str) -> Verification:
    """Whether ``code`` is on a message we composed, and that message. Every check is
    audited (who asked about which code), so guessing shows up in the log."""
    wanted = normalise_code(code)
    with writer(engine).begin() as conn:
        row = conn.execute(select(MESSAGES).where(MESSAGES.c.code == wanted)).first()
        audit.record(
            conn,
            actor=actor,
            action="verify",
            target=f"notice_code:{wanted}",
            details={"genuine": row is not None},
        )
        if row is None:
            return Verification(wanted, False)
        notices = [
            {"id": n.id, "kind": n.kind, "ref": n.ref, "queued_at": n.created_at.isoformat()}
            for n in conn.execute(
                select(NOTICES).where(NOTICES.c.message_id == row.id).order_by(NOTICES.c.id)
            )
        ]
        name = conn.execute(
            select(MERCHANTS.c.name).where(MERCHANTS.c.id == row.merchant_id)
        ).scalar_one()
    return Verification(wanted, True, dict(row._mapping), notices, name)


# -- opt-outs and complaints --------------------------------------------------------------


def record_contact(
    engine: Engine,
    merchant_id: str,
    kind: str,
    channels: Iterable[str],
    *,
    actor: str,
    note: str = "",
) -> list[str]:
    """Record an opt-out, opt-in or complaint on ``channels``; return the merchant's
    opted-out channels after it. A complaint about a channel stops its use, like an
    opt-out, and is kept as a complaint."""
    if kind not in ("opt_out", "opt_in", "complaint"):
        raise ContactError(f"{kind!r}: want opt_out, opt_in or complaint")
    chosen = list(dict.fromkeys(channels))
    bad = [c for c in chosen if c not in CHANNELS]
    if bad or not chosen:
        raise ContactError(f"channel {', '.join(bad) or '(none)'}: want {', '.join(CHANNELS)}")
    at = now()
    with writer(engine).begin() as conn:
        row = conn.execute(select(MERCHANTS.c.opt_out).where(MERCHANTS.c.id == merchant_id)).first()
        if row is None:
            raise ContactError(f"unknown merchant {merchant_id}")
        before = list(row.opt_out or [])
        if kind == "opt_in":
            after = [c for c in before if c not in chosen]
        else:
            after = before + [c for c in chosen if c not in before]
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(opt_out=after))
        conn.execute(
            insert(CONTACT_EVENTS),
            [
                {"merchant_id": merchant_id, "kind": kind, "channel": c, "note": note,
                 "at": at, "actor": actor}
                for c in chosen
            ],
        )  # fmt: skip
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"merchant:{merchant_id}",
            details={"contact": kind, "channels": chosen, "opt_out": [before, after]},
            reason=note,
            at=at,
        )
    return after
