"""The verification log: every code the call centre checked, genuine or not.

A NOT GENUINE answer is kept with who asked, from where, and (when the agent typed it)
the calling merchant and its region: the raw material of the scam report. Declarations
and the two functions that write and read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, insert, select

from fleet.core.clauses import VERIFICATION_CLAUSE

if TYPE_CHECKING:
    from fleet.core.models import VerificationLog

__all__ = ["log_verification", "recent_verifications"]


def log_verification(
    conn: Connection,
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
    return int(
        conn.execute(
            insert(VERIFICATION_CLAUSE)
            .values(
                at=at,
                code=code[:40],
                genuine=genuine,
                actor=actor,
                message_id=message_id,
                merchant_id=merchant_id,
                region=region,
                address=address[:64],
                note=note[:500],
            )
            .returning(VERIFICATION_CLAUSE.c.id)
        ).scalar_one()
    )


def recent_verifications(
    conn: Connection, *, genuine: bool | None = None, limit: int = 50
) -> Sequence[VerificationLog]:
    from fleet.core.models import VERIFICATIONS, VerificationLog  # noqa: PLC0415

    stmt = select(VERIFICATIONS).order_by(VERIFICATIONS.c.id.desc()).limit(limit)
    if genuine is not None:
        stmt = stmt.where(VERIFICATIONS.c.genuine == genuine)
    return [VerificationLog(**r._mapping) for r in conn.execute(stmt)]
