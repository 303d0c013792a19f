"""Queue: a notice is written in the transaction of the event that causes it (a swap, a
publication), so no event is without its notice. Its text fields (a swap's reason, a
table's description…) are checked first (:func:`fleet.notices.content.check_payload`): a
notice a merchant must not read refuses the event itself.

It writes through the bare clause of :mod:`fleet.core.clauses`, imported when it writes:
importing :mod:`fleet.notices` (as ``posfleet notices verify`` does) loads neither
SQLAlchemy nor a SQLModel class."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet.core.clock import now
from fleet.notices.payloads import NoticePayload

if TYPE_CHECKING:
    from sqlalchemy import Connection

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
    from sqlalchemy import insert  # noqa: PLC0415 - SQLAlchemy only to write

    from fleet.core.clauses import NOTICE_CLAUSE as NOTICES  # noqa: PLC0415

    _check(payload, ref)
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


def _check(payload: NoticePayload | dict[str, str], ref: str) -> None:
    from fleet.notices.content import check_payload  # noqa: PLC0415 - not on verify's path

    check_payload(payload if isinstance(payload, dict) else payload.to_json(), ref)


def queue_many(
    conn: Connection,
    notices: Iterable[tuple[str, NoticePayload]],
    *,
    ref: str,
    at: datetime | None = None,
) -> int:
    """Queue (merchant id, payload) pairs of one event in bulk; returns how many."""
    from sqlalchemy import insert  # noqa: PLC0415 - SQLAlchemy only to write

    from fleet.core.clauses import NOTICE_CLAUSE as NOTICES  # noqa: PLC0415

    at = at or now()
    rows: list[dict[str, Any]] = [
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
    texts = {(k, v) for row in rows for k, v in row["payload"].items() if isinstance(v, str)}
    for key, value in texts:  # the same few texts (a table's description), each once
        _check({key: value}, ref)
    for start in range(0, len(rows), 5000):
        conn.execute(insert(NOTICES), rows[start : start + 5000])
    return len(rows)
