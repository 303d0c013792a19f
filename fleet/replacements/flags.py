"""Terminals newly P1: the one replacement state that is remembered.

Flagging is computed from the fleet whenever it is asked for; what it cannot say alone is
which terminals *became* P1 since the last time. :func:`record_p1` keeps the set of P1
terminals in ``terminal_flag``: it adds the ones that are P1 now and were not, emitting
``terminal.flagged`` for each in the same transaction, and drops the ones that no longer
are (so a terminal that becomes P1 again is flagged again). The first call on a fleet
only records the baseline: the terminals P1 already are not news.

A tamper switch newly tripped is flagged at once, in the transaction that stores the
health report (:func:`flag_tampered`), not at the next :func:`record_p1`; that one then
finds it recorded and stays quiet.

Two processes recording at once insert each new row once (``ON CONFLICT DO NOTHING …
RETURNING``), and only the one that inserted it emits its event.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from fleet.core.db import writer
from fleet.core.events import emit
from fleet.core.models import TERMINALS, UTCDateTime, now, table_of
from fleet.core.policy import ReplacementPolicy
from fleet.replacements.query import flag

__all__ = ["FLAGS", "TerminalFlag", "flag_tampered", "record_p1"]

_CHUNK = 1000


class TerminalFlag(SQLModel, table=True):
    __tablename__ = "terminal_flag"

    serial: str = Field(primary_key=True, max_length=40)
    priority: int = 1
    flagged_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    replace_by: date | None = None


FLAGS = table_of(TerminalFlag)


def record_p1(engine: Engine, policy: ReplacementPolicy, as_of: date) -> list[str]:
    """Record the P1 terminals as of ``as_of``; the serials newly P1 (events emitted)."""
    current = {r.serial: r for r in flag(engine, policy, as_of) if r.priority == 1}
    at = now()
    with engine.connect() as conn:
        known = set(conn.execute(select(FLAGS.c.serial)).scalars())
        baseline = conn.execute(select(func.count()).select_from(FLAGS)).scalar_one() == 0
    new = sorted(set(current) - known)
    gone = sorted(known - set(current))
    added: list[str] = []
    with writer(engine).begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for i in range(0, len(new), _CHUNK):
            rows = [
                {"serial": s, "priority": 1, "flagged_at": at, "replace_by": current[s].replace_by}
                for s in new[i : i + _CHUNK]
            ]
            stmt = dialect.insert(FLAGS).on_conflict_do_nothing().returning(FLAGS.c.serial)
            added += [r[0] for r in conn.execute(stmt, rows)] if rows else []
        for i in range(0, len(gone), _CHUNK):
            conn.execute(delete(FLAGS).where(FLAGS.c.serial.in_(gone[i : i + _CHUNK])))
        if not baseline:
            for serial in added:
                r = current[serial]
                emit(
                    conn,
                    "terminal.flagged",
                    {"serial": serial, "priority": "P1", "merchant_id": r.merchant_id,
                     "model": r.model, "replace_by": r.replace_by.isoformat(),
                     "reasons": [x.code for x in r.reasons if x.in_effect]},
                    at=at,
                )  # fmt: skip
    return [] if baseline else added


def flag_tampered(conn: Connection, serial: str, at: datetime) -> bool:
    """Record ``serial`` as P1 now (its tamper switch tripped) and emit
    ``terminal.flagged`` in the caller's transaction; False (nothing emitted) when it was
    already recorded P1, or when no baseline exists yet (the first :func:`record_p1`
    records it with the others)."""
    if conn.execute(select(func.count()).select_from(FLAGS)).scalar_one() == 0:
        return False
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(FLAGS)
        .values(serial=serial, priority=1, flagged_at=now(), replace_by=now().date())
        .on_conflict_do_nothing()
        .returning(FLAGS.c.serial)
    )
    if conn.execute(stmt).first() is None:
        return False
    row = conn.execute(
        select(TERMINALS.c.merchant_id, TERMINALS.c.model).where(TERMINALS.c.serial == serial)
    ).first()
    merchant, model = (row.merchant_id, row.model) if row else (None, None)
    emit(
        conn,
        "terminal.flagged",
        {"serial": serial, "priority": "P1", "merchant_id": merchant, "model": model,
         "replace_by": now().date().isoformat(), "reasons": ["tamper"],
         "tampered_at": at.isoformat()},
    )  # fmt: skip
    return True
