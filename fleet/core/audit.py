"""The audit log: every change to the fleet, who made it, when, what and why.

:func:`record` is called inside the transaction that makes the change, so the log and
the fleet can never disagree. :func:`query` filters it for ``posfleet audit list``;
``posfleet audit list --format csv`` exports it for auditors.

:func:`record` writes through the bare clause of :mod:`fleet.core.clauses`, or on plain
DB-API (a :class:`~fleet.core.dbapi.QuickConnection`: ``posfleet notices verify``, which
loads neither SQLModel nor SQLAlchemy) the statement compiled from it; the readers use the
:class:`~fleet.core.models.Audit` model and import it when they run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet.core.actor import ACTIONS
from fleet.core.clock import now
from fleet.core.dbapi import QuickConnection

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlmodel import Session

    from fleet.core.models import Audit

__all__ = [
    "ACTIONS",
    "CSV_COLUMNS",
    "AuditFilter",
    "as_row",
    "query",
    "recent",
    "record",
    "summary",
]


def record(
    where: Session | Connection | QuickConnection,
    *,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> None:
    """Add one audit entry in the caller's transaction."""
    values = {
        "at": at or now(),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details or {},
        "reason": reason,
    }
    if isinstance(where, QuickConnection):
        where.rows("audit_insert", **values)
        return
    from sqlalchemy import insert  # noqa: PLC0415 - SQLAlchemy only where it is used

    from fleet.core.clauses import AUDIT_CLAUSE  # noqa: PLC0415

    where.execute(insert(AUDIT_CLAUSE).values(**values))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    """Exact target, or a prefix ending in ``*`` (``terminal:PS0000*``)."""
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


def _matching(flt: AuditFilter) -> Any:
    from sqlalchemy import select  # noqa: PLC0415
    from sqlmodel import col  # noqa: PLC0415 - the model only where it is read

    from fleet.core.models import Audit  # noqa: PLC0415

    stmt = select(Audit)
    if flt.actor:
        stmt = stmt.where(col(Audit.actor) == flt.actor)
    if flt.action:
        stmt = stmt.where(col(Audit.action) == flt.action)
    if flt.target:
        if flt.target.endswith("*"):
            stmt = stmt.where(col(Audit.target).startswith(flt.target[:-1], autoescape=True))
        else:
            stmt = stmt.where(col(Audit.target) == flt.target)
    if flt.since:
        stmt = stmt.where(col(Audit.at) >= flt.since)
    if flt.until:
        stmt = stmt.where(col(Audit.at) < flt.until)
    return stmt


def query(engine: Engine, flt: AuditFilter) -> Iterator[Audit]:
    """Entries matching ``flt``, oldest first (streamed)."""
    from sqlmodel import Session, col  # noqa: PLC0415 - the model only where it is read

    from fleet.core.models import Audit  # noqa: PLC0415

    stmt = _matching(flt).order_by(col(Audit.at), col(Audit.id))
    if flt.limit:
        stmt = stmt.limit(flt.limit)
    with Session(engine) as s:
        yield from s.scalars(stmt)


CSV_COLUMNS = ("id", "at", "actor", "action", "target", "reason", "details")


def as_row(entry: Audit) -> dict[str, str]:
    return {
        "id": str(entry.id),
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "details": json.dumps(entry.details, sort_keys=True, ensure_ascii=False),
    }


def summary(entry: Audit) -> str:
    """One line for a table: ``status: deployed → faulty``, ``300 rows, 12 new``…"""
    d = entry.details
    if entry.action == "import" and "rows" in d:
        return f"{d['rows']} rows, {d.get('inserted', 0)} new"
    changes = d.get("changes", d)
    parts = []
    for key, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            parts.append(f"{key}: {value[0] or '∅'} → {value[1] or '∅'}")
        elif not isinstance(value, dict | list):
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def recent(
    engine: Engine, flt: AuditFilter, *, before: int | None = None, limit: int = 50
) -> list[Audit]:
    """Entries matching ``flt``, newest first, with ids below ``before`` (a keyset page)."""
    from sqlmodel import Session, col  # noqa: PLC0415 - the model only where it is read

    from fleet.core.models import Audit  # noqa: PLC0415

    stmt = _matching(flt)
    if before is not None:
        stmt = stmt.where(col(Audit.id) < before)
    stmt = stmt.order_by(col(Audit.id).desc()).limit(limit)
    with Session(engine) as s:
        return list(s.scalars(stmt))
