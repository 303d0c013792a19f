"""Delivery receipts: what the provider says happened to a message, beside its send state.

A message is ``sent`` when a transport took it (the dispatcher); its *delivery* state
comes from the provider afterwards and only moves forward::

    (none) < queued < sent < expired < delivered | undelivered | failed

``expired`` is set by :func:`sweep` when an SMS had no final receipt within the policy's
``receipt_window``; a late ``delivered`` still counts (it is evidence), but does not
fall back twice. An SMS is *delivered* only on a receipt; an email is delivered when the
SMTP server accepted it, unless a bounce comes back (:func:`apply_bounce`).

Every callback is stored once, by provider, provider message id and status
(``uq_receipt``): a duplicate changes nothing, an out-of-order one (``sent`` after
``delivered``) is kept but changes nothing. The state moves with one conditional
``UPDATE … WHERE delivery IN (lower states)``, in the transaction that stores the
receipt, and the fallback (:func:`fall_back`) happens in that same transaction: a
process killed anywhere leaves either all of it or none, and the provider's retry (or a
replay) then finds the receipt already stored.

Undelivered, failed or expired: the message's notices are queued again on the next
channel — email if the merchant has an address, else a call task — and compose sends
them under the same caps and quiet hours as any notice.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message as EmailMessage
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from fleet.core.db import writer
from fleet.core.errors import InputError
from fleet.core.events import emit
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES, RECEIPTS, now

__all__ = [
    "FINAL",
    "RANK",
    "Receipt",
    "ReceiptOutcome",
    "apply_bounce",
    "apply_receipt",
    "delivery_of",
    "fall_back",
    "parse_callback",
    "parse_dsn",
    "sweep",
]

RANK = {"queued": 1, "sent": 2, "expired": 3, "delivered": 4, "undelivered": 4, "failed": 4}
FINAL = frozenset({"delivered", "undelivered", "failed"})
BAD = frozenset({"undelivered", "failed", "expired"})
_ALIASES = {
    "accepted": "queued", "scheduled": "queued", "sending": "queued", "buffered": "queued",
    "read": "delivered", "canceled": "failed", "cancelled": "failed", "rejected": "failed",
    "expired": "undelivered",
}  # fmt: skip
"""Other providers' words (Twilio, Vonage…) for our five."""
_ID = re.compile(r"^[A-Za-z0-9._:@<>+=-]{1,80}$")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One status callback, as parsed."""

    provider_id: str
    """The provider's message id (or our reference, when the provider echoes it)."""
    status: str
    error_code: str | None = None
    reference: str | None = None
    """Our message code, when the provider echoes the reference we sent with it."""


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    message: str | None
    """The message's code, or None when no message matches."""
    status: str
    duplicate: bool = False
    applied: bool = False
    fell_back: bool = False
    delivery: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message, "status": self.status, "duplicate": self.duplicate,
            "applied": self.applied, "fell_back": self.fell_back, "delivery": self.delivery,
        }  # fmt: skip


def _status(raw: str) -> str:
    word = raw.strip().lower()
    word = _ALIASES.get(word, word)
    if word not in RANK or word == "expired":
        raise InputError(
            f"unknown status {raw[:20]!r}: want queued, sent, delivered, undelivered or failed",
            where="status",
        )
    return word


def _field(doc: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = doc.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def provider_document(content_type: str, body: bytes) -> Mapping[str, Any]:
    """A provider's request body: JSON (an object) or form-encoded as Twilio posts it;
    :class:`InputError` naming the body when it is neither."""
    if "json" in content_type:
        try:
            loaded = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InputError("not JSON", where="body") from None
        if not isinstance(loaded, dict):
            raise InputError("want a JSON object", where="body")
        return loaded
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 form data", where="body") from None


def parse_callback(content_type: str, body: bytes) -> Receipt:
    """A status callback: form-encoded as Twilio sends it (``MessageSid``,
    ``MessageStatus``, ``ErrorCode``) or JSON (``id``/``message_id``, ``status``,
    ``error_code``, optionally ``reference``). :class:`InputError` naming the field."""
    doc = provider_document(content_type, body)
    ident = _field(doc, "MessageSid", "SmsSid", "message_id", "messageId", "id")
    status = _field(doc, "MessageStatus", "SmsStatus", "status")
    if ident is None or not _ID.fullmatch(ident):
        raise InputError("want the provider's message id (1-80 safe characters)", where="id")
    if status is None:
        raise InputError("want a status", where="status")
    reference = _field(doc, "reference", "client_ref", "client-ref", "Reference")
    if reference is not None and not _ID.fullmatch(reference):
        raise InputError("not a message reference", where="reference")
    error = _field(doc, "ErrorCode", "error_code", "err-code")
    return Receipt(ident, _status(status), error[:40] if error else None, reference)


def _find(conn: Connection, receipt: Receipt) -> Any:
    cols = (MESSAGES.c.id, MESSAGES.c.code, MESSAGES.c.channel, MESSAGES.c.merchant_id,
            MESSAGES.c.delivery)  # fmt: skip
    for ref in (receipt.reference, receipt.provider_id):
        if ref:
            row = conn.execute(select(*cols).where(MESSAGES.c.code == ref[:12])).first()
            if row is not None:
                return row
    return conn.execute(
        select(*cols).where(MESSAGES.c.provider_ref == receipt.provider_id).limit(1)
    ).first()


def _lower(state: str) -> Any:
    below = [s for s, r in RANK.items() if r < RANK[state]]
    return or_(MESSAGES.c.delivery.is_(None), MESSAGES.c.delivery.in_(below))


def _move(
    conn: Connection, message_id: int, state: str, error: str | None, at: datetime
) -> tuple[bool, bool]:
    """Move the message's delivery to ``state`` if that is forward; (moved, fall back)."""
    values: dict[str, Any] = {"delivery": state}
    if state == "delivered":
        values["delivered_at"] = at
    if error:
        values["delivery_error"] = error[:200]
    if state in BAD:  # falls back only when it was not already expired
        lower = [s for s in RANK if RANK[s] < RANK["expired"]]
        first = conn.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == message_id,
                   or_(MESSAGES.c.delivery.is_(None), MESSAGES.c.delivery.in_(lower)))
            .values(**values)
        ).rowcount  # fmt: skip
        if first:
            return True, True
        if state == "expired":
            return False, False
    moved = conn.execute(
        update(MESSAGES).where(MESSAGES.c.id == message_id, _lower(state)).values(**values)
    ).rowcount
    return bool(moved), False


def apply_receipt(
    engine: Engine, provider: str, receipt: Receipt, *, at: datetime | None = None
) -> ReceiptOutcome:
    """Store one callback and move the message's delivery state, once; fall back on a
    bad final state. Idempotent: the same callback again changes nothing."""
    at = at or now()
    with writer(engine).begin() as conn:
        found = _find(conn, receipt)
        try:
            with conn.begin_nested():
                rid = conn.execute(
                    insert(RECEIPTS)
                    .values(
                        provider=provider, provider_id=receipt.provider_id,
                        status=receipt.status, error_code=receipt.error_code, received_at=at,
                        message_id=found.id if found is not None else None, applied=False,
                    )
                    .returning(RECEIPTS.c.id)
                ).scalar_one()  # fmt: skip
        except IntegrityError:
            return ReceiptOutcome(
                found.code if found is not None else None, receipt.status, duplicate=True
            )
        if found is None:
            return ReceiptOutcome(None, receipt.status)
        error = f"{receipt.status} {receipt.error_code}" if receipt.error_code else None
        moved, back = _move(conn, found.id, receipt.status, error, at)
        if moved:
            conn.execute(update(RECEIPTS).where(RECEIPTS.c.id == rid).values(applied=True))
        if back:
            back = fall_back(conn, found, f"{found.channel} {receipt.status}", at=at)
        state = conn.execute(
            select(MESSAGES.c.delivery).where(MESSAGES.c.id == found.id)
        ).scalar_one()
    return ReceiptOutcome(found.code, receipt.status, applied=moved, fell_back=back, delivery=state)


NEXT = {"sms": ("email", "call"), "email": ("call",), "call": ()}


def fall_back(conn: Connection, message: Any, why: str, *, at: datetime) -> bool:
    """Queue the notices ``message`` carried again on the next channel (email if the
    merchant has one, else a call task), in the caller's transaction. False when there
    is nothing to carry (a confirmation) or no channel left (the notices fail)."""
    ids = list(
        conn.execute(select(NOTICES.c.id).where(NOTICES.c.message_id == message.id)).scalars()
    )
    if not ids:
        return False
    merchant = conn.execute(
        select(MERCHANTS.c.phone, MERCHANTS.c.email).where(MERCHANTS.c.id == message.merchant_id)
    ).one()
    has = {"email": bool(merchant.email), "call": bool(merchant.phone)}
    nxt = next((c for c in NEXT.get(message.channel, ()) if has[c]), None)
    note = f"fallback: {why}"[:500]
    if nxt is None:
        conn.execute(
            update(NOTICES)
            .where(NOTICES.c.id.in_(ids))
            .values(status="failed", note=f"{note}; no channel left")
        )
    else:
        conn.execute(
            update(NOTICES)
            .where(NOTICES.c.id.in_(ids))
            .values(status="queued", channel=nxt, message_id=None, not_before=at, note=note)
        )
    emit(
        conn,
        "notice.fallback",
        {"message": message.code, "merchant_id": message.merchant_id, "from": message.channel,
         "to": nxt, "why": why[:200], "notices": ids},
    )  # fmt: skip
    return nxt is not None


def sweep(engine: Engine, window_s: float, *, at: datetime | None = None) -> int:
    """SMS sent more than ``window_s`` ago with no final receipt: ``expired``, and their
    notices fall back. Returns how many."""
    at = at or now()
    cutoff = at - timedelta(seconds=window_s)
    count = 0
    with writer(engine).begin() as conn:
        rows = conn.execute(
            select(MESSAGES.c.id, MESSAGES.c.code, MESSAGES.c.channel, MESSAGES.c.merchant_id)
            .where(
                MESSAGES.c.channel == "sms",
                MESSAGES.c.status == "sent",
                MESSAGES.c.sent_at < cutoff,
                or_(MESSAGES.c.delivery.is_(None), MESSAGES.c.delivery.in_(["queued", "sent"])),
            )
            .limit(5000)
        ).all()
        for row in rows:
            moved, back = _move(conn, row.id, "expired", "no receipt within the window", at)
            if moved:
                count += 1
                if back:
                    fall_back(conn, row, f"sms: no receipt within {window_s:g} s", at=at)
    return count


# -- email bounces ------------------------------------------------------------------------

_REF = re.compile(r"<notice-(\d+)\.([A-Z0-9-]{1,12})@posfleet>")
_XREF = re.compile(r"^X-Posfleet-Reference:\s*([A-Z0-9-]{1,12})\s*$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Bounce:
    code: str
    """The bounced message's reference (from its ``Message-ID`` or header)."""
    action: str
    status: str
    diagnostic: str


def parse_dsn(data: bytes, where: str = "bounce") -> Bounce:
    """A delivery status notification (RFC 3464): which of our messages and what
    happened. :class:`InputError` when it is not one, or names none of ours."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    action = status = diagnostic = ""
    code: str | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            payload = part.get_payload()
            blocks = payload if isinstance(payload, list) else []
            for block in blocks:
                if isinstance(block, EmailMessage) and block.get("Action"):
                    action = str(block.get("Action", "")).strip().lower()
                    status = str(block.get("Status", "")).strip()
                    diagnostic = str(block.get("Diagnostic-Code", "")).strip()
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            text = part.as_string()
            found = _REF.search(text) or _XREF.search(text)
            if found:
                code = found.group(found.lastindex or 1)
    if not action:
        raise InputError("not a delivery status notification (no Action)", where=where)
    if code is None:
        raise InputError("names none of our messages (no notice Message-ID)", where=where)
    return Bounce(code, action, status[:20], re.sub(r"\s+", " ", diagnostic)[:150])


def apply_bounce(engine: Engine, bounce: Bounce, *, at: datetime | None = None) -> ReceiptOutcome:
    """A bounce fed back: ``failed`` (falls back to a call task); a ``delayed`` DSN is
    stored and changes nothing."""
    status = "failed" if bounce.action == "failed" else "queued"
    receipt = Receipt(bounce.code, status, f"{bounce.status} {bounce.diagnostic}".strip()[:40],
                      bounce.code)  # fmt: skip
    return apply_receipt(engine, "smtp", receipt, at=at)


def delivery_of(row: Any) -> str | None:
    """A message's delivery state as people read it: an email the server accepted is
    ``sent`` until a bounce says otherwise; an SMS is what its receipts said."""
    if row.delivery:
        return str(row.delivery)
    if row.status == "sent":
        return "sent"
    return None
