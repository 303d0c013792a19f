"""The verification log: every code the call centre checked, genuine or not.

A NOT GENUINE answer is kept with who asked, from where, and (when the agent typed it)
the calling merchant and its region: the raw material of the scam report. Declarations
and the two functions that write and read it (the writer also on plain DB-API, a
:class:`~fleet.core.dbapi.QuickConnection`, as ``posfleet notices verify`` runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from fleet.core.dbapi import QuickConnection

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from fleet.core.models import VerificationLog

__all__ = ["log_verification", "recent_verifications"]


def log_verification(
    conn: Connection | QuickConnection,
    *,
    at: datetime,
    code: str,
    genuine: bool,
    actor: str,
    message_id: int | None = None,
    merchant_id: str | None = None,
    region: str | None = None,
    address: str = "",
    note: str = "",
) -> int:
    """One check, in the caller's transaction; its id."""
    values = {
        "at": at,
        "code": code[:40],
        "genuine": genuine,
        "actor": actor,
        "message_id": message_id,
        "merchant_id": merchant_id,
        "region": region,
        "address": address[:64],
        "note": note[:500],
    }
    if isinstance(conn, QuickConnection):
        return int(conn.scalar_one("verification_insert", **values))
    from sqlalchemy import insert  # noqa: PLC0415 - SQLAlchemy only where it is used

    from fleet.core.clauses import VERIFICATION_CLAUSE  # noqa: PLC0415

    stmt = insert(VERIFICATION_CLAUSE).values(**values).returning(VERIFICATION_CLAUSE.c.id)
    return int(conn.execute(stmt).scalar_one())


def recent_verifications(
    conn: Connection, *, genuine: bool | None = None, limit: int = 50
) -> Sequence[VerificationLog]:
    from sqlalchemy import select  # noqa: PLC0415

    from fleet.core.models import VERIFICATIONS, VerificationLog  # noqa: PLC0415

    stmt = select(VERIFICATIONS).order_by(VERIFICATIONS.c.id.desc()).limit(limit)
    if genuine is not None:
        stmt = stmt.where(VERIFICATIONS.c.genuine == genuine)
    return [VerificationLog(**r._mapping) for r in conn.execute(stmt)]
