"""The verification log: every code the call centre checked, genuine or not.

A NOT GENUINE answer is kept with who asked, from where, and (when the agent typed it)
the calling merchant and its region: the raw material of the scam report. Declarations
and the two functions that write and read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Column, Connection, Index, insert, select
from sqlmodel import Field, SQLModel

from fleet.core.models import UTCDateTime, table_of

__all__ = ["VERIFICATIONS", "VerificationLog", "log_verification", "recent_verifications"]


class VerificationLog(SQLModel, table=True):
    __tablename__ = "verification"
    __table_args__ = (
        Index("ix_verification_at", "at"),
        Index("ix_verification_genuine", "genuine", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    code: str = Field(max_length=40)
    genuine: bool
    message_id: int | None = None
    merchant_id: str | None = Field(default=None, max_length=15)
    """Whose message it is (genuine), or the calling merchant the agent named."""
    region: str | None = Field(default=None, max_length=40)
    actor: str = Field(max_length=80)
    address: str = Field(default="", max_length=64)
    """Where the check came from (the agent's client address), when known."""
    note: str = Field(default="", max_length=500)


VERIFICATIONS = table_of(VerificationLog)


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
            insert(VERIFICATIONS)
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
            .returning(VERIFICATIONS.c.id)
        ).scalar_one()
    )


def recent_verifications(
    conn: Connection, *, genuine: bool | None = None, limit: int = 50
) -> Sequence[VerificationLog]:
    stmt = select(VERIFICATIONS).order_by(VERIFICATIONS.c.id.desc()).limit(limit)
    if genuine is not None:
        stmt = stmt.where(VERIFICATIONS.c.genuine == genuine)
    return [VerificationLog(**r._mapping) for r in conn.execute(stmt)]
