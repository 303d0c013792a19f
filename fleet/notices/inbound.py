"""Replies: what a merchant texts back, matched and acted on once.

A reply is matched to the merchant by its number (E.164, :mod:`phonenumbers`) and to the
notice it answers by the most recent SMS sent to that number. Then, by its whole text
(trimmed, any case):

=======================  ================================================================
reply                    does
=======================  ================================================================
a stop word (policy      the merchant is opted out of SMS (a contact event, audited) and
``inbound.stop_words``:  gets one confirmation SMS — the last — through the outbox
STOP, 退订, TD, T…)       (verifiable like every message); a second STOP sends nothing
``1`` (``confirm``)      to a planned swap's notice: the swap shows the date confirmed
``2`` (``reschedule``)   to a planned swap's notice: the swap shows it, and a call task
                         asks the call centre to agree a new date
anything else            a call task with the text (escaped wherever it is shown)
=======================  ================================================================

Each reply is stored once per provider id (``uq_inbound``): a provider's retry or a
replay changes nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.errors import InputError
from fleet.core.models import (
    CALL_TASKS,
    CONTACT_EVENTS,
    INBOUND,
    MERCHANTS,
    MESSAGES,
    NOTICES,
    SWAPS,
    now,
)
from fleet.core.policy import InboundPolicy, NoticePolicy
from fleet.core.values import parse_phone
from fleet.notices.receipts import provider_document

__all__ = ["Inbound", "ReplyOutcome", "classify", "handle_reply", "parse_inbound"]

_ID = re.compile(r"^[A-Za-z0-9._:@<>+=-]{1,80}$")
MAX_TEXT = 1600


@dataclass(frozen=True, slots=True)
class Inbound:
    provider_id: str
    from_number: str
    """E.164."""
    text: str


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    action: str
    merchant_id: str | None
    message: str | None
    """The code of the message it answers."""
    duplicate: bool = False
    task: int | None = None
    confirmation: str | None = None
    """The confirmation SMS's code (an opt-out)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "merchant_id": self.merchant_id, "message": self.message,
            "duplicate": self.duplicate, "task": self.task, "confirmation": self.confirmation,
        }  # fmt: skip


def _field(doc: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = doc.get(name)
        if value is not None:
            return str(value)
    return None


def parse_inbound(content_type: str, body: bytes) -> Inbound:
    """An inbound SMS: form-encoded as Twilio sends it (``MessageSid``, ``From``,
    ``Body``) or JSON (``id``, ``from``, ``text``)."""
    doc = provider_document(content_type, body)
    ident = (_field(doc, "MessageSid", "SmsSid", "id", "message_id") or "").strip()
    if not _ID.fullmatch(ident):
        raise InputError("want the provider's message id (1-80 safe characters)", where="id")
    raw_from = (_field(doc, "From", "from", "msisdn") or "").strip()
    if not raw_from:
        raise InputError("want the sender's number", where="from")
    if not raw_from.startswith("+") and raw_from.isdigit():
        raw_from = "+" + raw_from  # providers that drop the plus (Vonage)
    try:
        number = parse_phone(raw_from)
    except ValueError as exc:
        raise InputError(str(exc)[:120], where="from") from None
    text = _field(doc, "Body", "text", "body")
    if text is None:
        raise InputError("want the text of the reply", where="text")
    text = text.replace("\x00", "")
    if len(text) > MAX_TEXT:
        raise InputError(f"a reply is at most {MAX_TEXT} characters", where="text")
    return Inbound(ident, number, text)


def classify(text: str, policy: InboundPolicy) -> str:
    """``stop``, ``confirm``, ``reschedule`` or ``other``, by the whole reply.

    >>> p = InboundPolicy()
    >>> [classify(t, p) for t in (" stop ", "退订", "td", "1", "2", "stop please")]
    ['stop', 'stop', 'stop', 'confirm', 'reschedule', 'other']
    """
    word = re.sub(r"\s+", " ", text).strip().upper()
    word = word.rstrip(".!。！")
    if word in policy.all_stop_words():
        return "stop"
    if word == policy.confirm.upper():
        return "confirm"
    if word == policy.reschedule.upper():
        return "reschedule"
    return "other"


def _latest(conn: Connection, number: str) -> Any:
    """The most recent SMS sent (or being sent) to ``number``."""
    return conn.execute(
        select(MESSAGES.c.id, MESSAGES.c.code, MESSAGES.c.merchant_id)
        .where(
            MESSAGES.c.address == number,
            MESSAGES.c.channel == "sms",
            MESSAGES.c.status.in_(["sent", "sending"]),
        )
        .order_by(MESSAGES.c.created_at.desc(), MESSAGES.c.id.desc())
        .limit(1)
    ).first()


def _planned_swap(conn: Connection, message_id: int) -> int | None:
    refs = conn.execute(
        select(NOTICES.c.ref).where(
            NOTICES.c.message_id == message_id, NOTICES.c.kind == "swap_planned"
        )
    ).scalars()
    for ref in refs:
        if ref.startswith("swap:") and ref[5:].isdigit():
            status = conn.execute(
                select(SWAPS.c.status).where(SWAPS.c.id == int(ref[5:]))
            ).scalar_one_or_none()
            if status == "planned":
                return int(ref[5:])
    return None


def _task(
    conn: Connection, merchant_id: str | None, phone: str, kind: str, ref: str, text: str,
    at: datetime,
) -> int:  # fmt: skip
    return int(
        conn.execute(
            insert(CALL_TASKS)
            .values(
                merchant_id=merchant_id,
                phone=phone,
                kind=kind,
                ref=ref[:60],
                text=text,
                created_at=at,
                status="open",
            )
            .returning(CALL_TASKS.c.id)
        ).scalar_one()
    )


def _confirmation(
    conn: Connection, notices: NoticePolicy, merchant: Any, at: datetime
) -> str | None:
    """The one confirmation of an opt-out: an SMS (the last) ready for the dispatcher."""
    from fleet.core.money import parse_minor  # noqa: PLC0415
    from fleet.notices.codes import new_code  # noqa: PLC0415
    from fleet.notices.content import forbidden  # noqa: PLC0415
    from fleet.notices.sms import cost  # noqa: PLC0415
    from fleet.notices.text import NoticeItem, render, template_language  # noqa: PLC0415

    language = template_language(merchant.language)
    code = new_code()
    out = render(
        [NoticeItem("opt_out_confirm", {"region": merchant.region or ""})],
        channel="sms", language=language, zone=merchant.timezone, merchant=merchant.name,
        code=code, policy=notices,
    )  # fmt: skip
    if forbidden(out.body) is not None or out.sms is None:
        return None
    price = parse_minor(notices.sms_price, notices.sms_currency)
    conn.execute(
        insert(MESSAGES).values(
            code=code, merchant_id=merchant.id, channel="sms", address=merchant.phone,
            language=language, kinds=["opt_out_confirm"], subject="", body=out.body,
            sms_encoding=out.sms.encoding, segments=out.sms.segments,
            cost=cost(out.sms, price), cost_currency=notices.sms_currency, status="ready",
            attempts=0, not_before=at, created_at=at,
        )
    )  # fmt: skip
    return code


def handle_reply(
    engine: Engine,
    provider: str,
    reply: Inbound,
    *,
    policy: InboundPolicy,
    notices: NoticePolicy,
    at: datetime | None = None,
) -> ReplyOutcome:
    """Act on one inbound SMS, once (see the module's table)."""
    at = at or now()
    kind = classify(reply.text, policy)
    with writer(engine).begin() as conn:
        latest = _latest(conn, reply.from_number)
        merchant_id = latest.merchant_id if latest is not None else None
        if merchant_id is None:
            merchant_id = conn.execute(
                select(MERCHANTS.c.id).where(MERCHANTS.c.phone == reply.from_number).limit(1)
            ).scalar_one_or_none()
        code = latest.code if latest is not None else None
        try:
            with conn.begin_nested():
                rid = conn.execute(
                    insert(INBOUND)
                    .values(provider=provider, provider_id=reply.provider_id,
                            from_number=reply.from_number, body=reply.text, received_at=at,
                            merchant_id=merchant_id,
                            message_id=latest.id if latest is not None else None,
                            action="pending")
                    .returning(INBOUND.c.id)
                ).scalar_one()  # fmt: skip
        except IntegrityError:
            done = conn.execute(
                select(INBOUND.c.action).where(
                    INBOUND.c.provider == provider, INBOUND.c.provider_id == reply.provider_id
                )
            ).scalar_one()
            return ReplyOutcome(done, merchant_id, code, duplicate=True)
        outcome = _act(conn, kind, reply, merchant_id, latest, policy, notices, at)
        conn.execute(update(INBOUND).where(INBOUND.c.id == rid).values(action=outcome.action))
    return outcome


def _act(
    conn: Connection, kind: str, reply: Inbound, merchant_id: str | None, latest: Any,
    policy: InboundPolicy, notices: NoticePolicy, at: datetime,
) -> ReplyOutcome:  # fmt: skip
    code = latest.code if latest is not None else None
    ref = f"message:{code}" if code else f"phone:{reply.from_number}"
    if merchant_id is None:
        task = _task(conn, None, reply.from_number, "reply", ref, reply.text, at)
        return ReplyOutcome("unmatched", None, code, task=task)
    if kind == "stop":
        merchant = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id)).one()
        before = list(merchant.opt_out or [])
        if "sms" in before:
            return ReplyOutcome("opt_out", merchant_id, code)  # already: no second confirmation
        after = [*before, "sms"]
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(opt_out=after))
        conn.execute(
            insert(CONTACT_EVENTS).values(
                merchant_id=merchant_id, kind="opt_out", channel="sms",
                note=f"SMS reply {reply.text.strip()[:40]!r}", at=at, actor="sms-reply",
            )
        )  # fmt: skip
        audit.record(
            conn, actor="sms-reply", action="update", target=f"merchant:{merchant_id}",
            details={"contact": "opt_out", "channels": ["sms"], "opt_out": [before, after],
                     "reply_to": code},
            reason="merchant replied with a stop word", at=at,
        )  # fmt: skip
        confirmation = _confirmation(conn, notices, merchant, at) if merchant.phone else None
        return ReplyOutcome("opt_out", merchant_id, code, confirmation=confirmation)
    swap = _planned_swap(conn, latest.id) if latest is not None else None
    if kind in ("confirm", "reschedule") and swap is not None:
        answer = "confirmed" if kind == "confirm" else "reschedule"
        conn.execute(
            update(SWAPS).where(SWAPS.c.id == swap).values(merchant_reply=answer, replied_at=at)
        )
        audit.record(
            conn, actor="sms-reply", action="update", target=f"swap:{swap}",
            details={"merchant_reply": answer, "reply_to": code}, at=at,
        )  # fmt: skip
        rescheduling: int | None = None
        if kind == "reschedule":
            rescheduling = _task(conn, merchant_id, reply.from_number, "reschedule", f"swap:{swap}",
                         reply.text, at)  # fmt: skip
        return ReplyOutcome(kind, merchant_id, code, task=rescheduling)
    task = _task(conn, merchant_id, reply.from_number, "reply", ref, reply.text, at)
    return ReplyOutcome("call_task", merchant_id, code, task=task)


def open_tasks(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """The call centre's open tasks from replies, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(CALL_TASKS)
            .where(CALL_TASKS.c.status == "open")
            .order_by(CALL_TASKS.c.id)
            .limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]
