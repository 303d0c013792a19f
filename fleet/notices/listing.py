"""Notices as ops see them: each with its message (channel, masked address, code,
status, SMS cost), and how many messages are waiting to be sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from fleet.core.errors import NotFoundError
from fleet.core.masking import mask_address, redact_addresses
from fleet.core.models import AUDIT, MERCHANTS, MESSAGES, NOTICES
from fleet.core.money import format_minor

__all__ = ["list_notices", "notice_detail", "waiting_messages"]


def list_notices(
    engine: Engine,
    *,
    status: str | None = None,
    kind: str | None = None,
    merchant: str | None = None,
    limit: int = 200,
    before: int | None = None,
    mask: bool = True,
) -> list[dict[str, Any]]:
    """Notices, newest first, with their message; the address masked (``to``; whole when
    not ``mask``) and the SMS cost worded with its currency (``"0.10 EUR"``). ``before``:
    only notices with a smaller id (the next page of a keyset)."""
    query = (
        select(
            NOTICES.c.id, NOTICES.c.kind, NOTICES.c.merchant_id, NOTICES.c.ref,
            NOTICES.c.status, NOTICES.c.created_at, NOTICES.c.not_before, NOTICES.c.note,
            MESSAGES.c.code, MESSAGES.c.channel, MESSAGES.c.address, MESSAGES.c.sent_at,
            MESSAGES.c.segments, MESSAGES.c.cost, MESSAGES.c.cost_currency,
            MESSAGES.c.attempts, MESSAGES.c.error,
        )
        .outerjoin(MESSAGES, MESSAGES.c.id == NOTICES.c.message_id)
        .order_by(NOTICES.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    if status:
        query = query.where(NOTICES.c.status == status)
    if kind:
        query = query.where(NOTICES.c.kind == kind)
    if merchant:
        query = query.where(NOTICES.c.merchant_id == merchant)
    if before is not None:
        query = query.where(NOTICES.c.id < before)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        address = row.pop("address")
        row["to"] = (mask_address(address) if mask else address) if address else ""
        if mask and row.get("error"):  # a gateway's refusal quotes the number it refused
            row["error"] = redact_addresses(row["error"])
        currency = row.pop("cost_currency")
        if row["cost"] is not None:
            row["cost"] = f"{format_minor(row['cost'], currency)} {currency}"
    return rows


def waiting_messages(engine: Engine) -> int:
    """Messages ready to send or being sent."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(MESSAGES.c.status.in_(("ready", "sending")))
            ).scalar_one()
        )


def notice_detail(engine: Engine, notice_id: int, *, mask: bool = True) -> dict[str, Any]:
    """One notice: what it is about, its merchant, the message that carried it (text,
    channel, address masked unless not ``mask``, code), and its history: queued,
    composed, each send attempt's outcome as far as recorded, and its verifications."""
    with engine.connect() as conn:
        notice = conn.execute(select(NOTICES).where(NOTICES.c.id == notice_id)).first()
        if notice is None:
            raise NotFoundError("no such notice", where=f"notice {notice_id}")
        merchant = conn.execute(
            select(MERCHANTS.c.id, MERCHANTS.c.name, MERCHANTS.c.language).where(
                MERCHANTS.c.id == notice.merchant_id
            )
        ).first()
        message = (
            conn.execute(select(MESSAGES).where(MESSAGES.c.id == notice.message_id)).first()
            if notice.message_id
            else None
        )
        checks = (
            [
                dict(r._mapping)
                for r in conn.execute(
                    select(AUDIT.c.at, AUDIT.c.actor, AUDIT.c.details)
                    .where(AUDIT.c.target == f"notice_code:{message.code}")
                    .order_by(AUDIT.c.id)
                    .limit(50)
                )
            ]
            if message is not None
            else []
        )
    history: list[dict[str, Any]] = [{"at": notice.created_at, "what": f"queued ({notice.kind})"}]
    msg: dict[str, Any] | None = None
    if message is not None:
        msg = dict(message._mapping)
        address = msg.pop("address")
        msg["to"] = mask_address(address) if mask else address
        for key in ("error", "delivery_error"):  # a gateway's answers quote the number
            if mask and msg.get(key):
                msg[key] = redact_addresses(msg[key])
        msg.pop("lease_owner", None)
        msg.pop("lease_until", None)
        history.append({"at": message.created_at, "what": f"composed as {message.code} "
                        f"({message.channel}, {message.language})"})  # fmt: skip
        if message.sent_at:
            history.append({"at": message.sent_at, "what": f"sent via {message.transport or '?'}"
                            f" after {message.attempts} attempt(s)"})  # fmt: skip
        elif message.error:
            history.append({"at": None, "what": f"{message.status} after {message.attempts} "
                            f"attempt(s): {msg['error']}"})  # fmt: skip
    for check in checks:
        genuine = (check["details"] or {}).get("genuine")
        history.append({"at": check["at"], "what": f"verified by {check['actor']}: "
                        f"{'genuine' if genuine else 'not genuine'}"})  # fmt: skip
    return {
        "notice": dict(notice._mapping),
        "merchant": dict(merchant._mapping) if merchant else None,
        "message": msg,
        "history": history,
    }
