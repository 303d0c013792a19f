"""Terminals as the console and the API browse them: filtered pages over any number of
rows, and one terminal's whole history.

Pages are **keyset** pages: ordered by serial, the next page starts after the last
serial shown (``after``), so page 10,000 of a million terminals costs what page 1
does (an index range scan: ``(status, serial)``, ``(model, serial)`` or the primary
key). No total is counted per request; a page says whether there is a next one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Select, or_, select

from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import (
    ATTEMPTS,
    AUDIT,
    JOBS,
    MERCHANTS,
    MESSAGES,
    MODELS,
    NOTICES,
    SWAPS,
    TERMINALS,
    Status,
)

__all__ = ["MAX_PAGE", "TerminalFilter", "TerminalPage", "terminal_history", "terminal_page"]

MAX_PAGE = 500
STATUSES = tuple(s.value for s in Status)


@dataclass(frozen=True, slots=True)
class TerminalFilter:
    """What to show: every field is optional and they combine (AND)."""

    q: str | None = None
    """A serial prefix, or an exact TID or merchant id."""
    status: str | None = None
    model: str | None = None
    firmware: str | None = None
    merchant: str | None = None
    region: str | None = None
    """The merchant's region."""

    def check(self) -> TerminalFilter:
        if self.status and self.status not in STATUSES:
            raise InputError(
                f"terminal status {self.status!r} (one of {', '.join(STATUSES)})", where="status"
            )
        if self.q is not None and len(self.q) > 40:
            raise InputError("a search is at most 40 characters", where="q")
        return self

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        t = TERMINALS.c
        if self.q:
            q = self.q.strip()
            stmt = stmt.where(
                or_(
                    t.serial.startswith(q, autoescape=True),
                    t.tid == q,
                    t.merchant_id == q,
                )
            )
        if self.status:
            stmt = stmt.where(t.status == self.status)
        if self.model:
            stmt = stmt.where(t.model == self.model)
        if self.firmware:
            stmt = stmt.where(t.firmware == self.firmware)
        if self.merchant:
            stmt = stmt.where(t.merchant_id == self.merchant)
        if self.region:
            stmt = stmt.where(
                t.merchant_id.in_(select(MERCHANTS.c.id).where(MERCHANTS.c.region == self.region))
            )
        return stmt


@dataclass(frozen=True, slots=True)
class TerminalPage:
    items: list[dict[str, Any]]
    next_after: str | None
    """The ``after`` of the next page; none on the last."""


COLUMNS = (
    "serial", "model", "firmware", "status", "tid", "mid", "merchant_id", "deployed_on",
    "last_seen", "active_version", "pending_version",
)  # fmt: skip


def terminal_page(
    engine: Engine, flt: TerminalFilter, *, after: str | None = None, limit: int = 50
) -> TerminalPage:
    """Up to ``limit`` terminals matching ``flt`` whose serial sorts after ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"a page holds 1 to {MAX_PAGE} terminals", where="limit")
    flt.check()
    t = TERMINALS.c
    stmt: Select[Any] = select(
        *(t[c] for c in COLUMNS), MERCHANTS.c.name.label("merchant")
    ).outerjoin(MERCHANTS, MERCHANTS.c.id == t.merchant_id)
    stmt = flt.apply(stmt)
    if after:
        stmt = stmt.where(t.serial > after)
    stmt = stmt.order_by(t.serial).limit(limit + 1)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        keys = list(result.keys())
        rows = [dict(zip(keys, r, strict=True)) for r in result]
    more = len(rows) > limit
    rows = rows[:limit]
    return TerminalPage(rows, rows[-1]["serial"] if more and rows else None)


@dataclass
class TerminalHistory:
    terminal: dict[str, Any]
    model: dict[str, Any] | None
    merchant: dict[str, Any] | None
    pushes: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    swaps: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    """Every change and sync of it, newest first."""


def terminal_history(engine: Engine, serial: str, *, limit: int = 50) -> TerminalHistory:
    """``serial``: its record, model, merchant, push attempts (each with its outcome),
    rollout jobs, swaps, its merchant's notices, and its audit entries (syncs included),
    newest first, at most ``limit`` of each."""
    with engine.connect() as conn:
        row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).first()
        if row is None:
            raise NotFoundError("no such terminal", where=serial)
        terminal = dict(row._mapping)
        model = conn.execute(select(MODELS).where(MODELS.c.code == row.model)).first()
        merchant = (
            conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == row.merchant_id)).first()
            if row.merchant_id
            else None
        )

        def rows(stmt: Select[Any]) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(stmt.limit(limit))]

        history = TerminalHistory(
            terminal,
            dict(model._mapping) if model else None,
            dict(merchant._mapping) if merchant else None,
            pushes=rows(
                select(ATTEMPTS).where(ATTEMPTS.c.serial == serial).order_by(ATTEMPTS.c.id.desc())
            ),
            jobs=rows(select(JOBS).where(JOBS.c.serial == serial).order_by(JOBS.c.id.desc())),
            swaps=rows(
                select(SWAPS)
                .where(or_(SWAPS.c.old_serial == serial, SWAPS.c.new_serial == serial))
                .order_by(SWAPS.c.id.desc())
            ),
            audit=rows(
                select(AUDIT)
                .where(AUDIT.c.target == f"terminal:{serial}")
                .order_by(AUDIT.c.id.desc())
            ),
        )
        if row.merchant_id:
            history.notices = rows(
                select(
                    NOTICES.c.id, NOTICES.c.kind, NOTICES.c.ref, NOTICES.c.status,
                    NOTICES.c.created_at, MESSAGES.c.code, MESSAGES.c.channel,
                    MESSAGES.c.address, MESSAGES.c.sent_at,
                )
                .outerjoin(MESSAGES, MESSAGES.c.id == NOTICES.c.message_id)
                .where(NOTICES.c.merchant_id == row.merchant_id)
                .order_by(NOTICES.c.id.desc())
            )  # fmt: skip
    return history
