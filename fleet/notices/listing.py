"""Notices as ops see them: each with its message (channel, masked address, code,
status, SMS cost), and how many messages are waiting to be sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from fleet.core.masking import mask_address
from fleet.core.models import MESSAGES, NOTICES
from fleet.core.money import format_minor

__all__ = ["list_notices", "waiting_messages"]


def list_notices(
    engine: Engine,
    *,
    status: str | None = None,
    kind: str | None = None,
    merchant: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Notices, newest first, with their message; the address masked (``to``) and the SMS
    cost worded with its currency (``"0.10 EUR"``)."""
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
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["to"] = mask_address(row.pop("address")) if row.get("address") else ""
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
