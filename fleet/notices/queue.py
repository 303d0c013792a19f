"""Queue: a notice is written in the transaction of the event that causes it (a swap, a
publication), so no event is without its notice."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, insert

from fleet.core.models import NOTICES, now
from fleet.notices.payloads import NoticePayload

__all__ = ["queue", "queue_many"]


def queue(
    conn: Connection,
    payload: NoticePayload,
    *,
    merchant_id: str,
    ref: str,
    at: datetime | None = None,
    not_before: datetime | None = None,
    channel: str | None = None,
) -> None:
    """Queue one notice in the caller's transaction (once per kind, merchant and event);
    ``channel`` forces one (a follow-up call task)."""
    conn.execute(
        insert(NOTICES).values(
            kind=payload.kind,
            merchant_id=merchant_id,
            ref=ref,
            payload=payload.to_json(),
            created_at=at or now(),
            status="queued",
            not_before=not_before,
            channel=channel,
        )
    )


def queue_many(
    conn: Connection,
    notices: Iterable[tuple[str, NoticePayload]],
    *,
    ref: str,
    at: datetime | None = None,
) -> int:
    """Queue (merchant id, payload) pairs of one event in bulk; returns how many."""
    at = at or now()
    rows = [
        {
            "kind": payload.kind,
            "merchant_id": merchant_id,
            "ref": ref,
            "payload": payload.to_json(),
            "created_at": at,
            "status": "queued",
        }
        for merchant_id, payload in notices
    ]
    for start in range(0, len(rows), 5000):
        conn.execute(insert(NOTICES), rows[start : start + 5000])
    return len(rows)
