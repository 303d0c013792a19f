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

from sqlalchemy import Engine, Integer, Select, bindparam, or_, select

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

    def shape(self) -> tuple[bool, ...]:
        """Which filters are set: one statement per shape (:func:`_page_statement`)."""
        return (
            bool(self.q and self.q.strip()), bool(self.status), bool(self.model),
            bool(self.firmware), bool(self.merchant), bool(self.region),
        )  # fmt: skip

    def params(self) -> dict[str, Any]:
        """The values of the filters set, for the bound parameters of its shape's statement."""
        q = (self.q or "").strip()
        return {
            "q": q,
            "q_prefix": _like_escape(q) + "%",
            "status": self.status,
            "model": self.model,
            "firmware": self.firmware,
            "merchant": self.merchant,
            "region": self.region,
        }


def _like_escape(text: str) -> str:
    """``text`` matched literally by LIKE … ESCAPE '/' (as SQLAlchemy's ``autoescape``)."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@dataclass(frozen=True, slots=True)
class TerminalPage:
    items: list[dict[str, Any]]
    next_after: str | None
    """The ``after`` of the next page; none on the last."""


COLUMNS = (
    "serial", "model", "firmware", "status", "tid", "mid", "merchant_id", "deployed_on",
    "last_seen", "active_version", "pending_version",
)  # fmt: skip


_STATEMENTS: dict[tuple[bool, ...], Select[Any]] = {}


def _page_statement(shape: tuple[bool, ...], after: bool) -> Select[Any]:
    """The page's query for a shape of filter, built once: every value is a bound parameter,
    so SQLAlchemy compiles it once and finds it again by the same object (building the
    query and its cache key per request cost as much as running it)."""
    key = (*shape, after)
    found = _STATEMENTS.get(key)
    if found is not None:
        return found
    has_q, has_status, has_model, has_firmware, has_merchant, has_region = shape
    t = TERMINALS.c
    stmt: Select[Any] = select(
        *(t[c] for c in COLUMNS), MERCHANTS.c.name.label("merchant")
    ).outerjoin(MERCHANTS, MERCHANTS.c.id == t.merchant_id)
    if has_q:
        stmt = stmt.where(
            or_(
                t.serial.like(bindparam("q_prefix"), escape="/"),
                t.tid == bindparam("q"),
                t.merchant_id == bindparam("q"),
            )
        )
    if has_status:
        stmt = stmt.where(t.status == bindparam("status"))
    if has_model:
        stmt = stmt.where(t.model == bindparam("model"))
    if has_firmware:
        stmt = stmt.where(t.firmware == bindparam("firmware"))
    if has_merchant:
        stmt = stmt.where(t.merchant_id == bindparam("merchant"))
    if has_region:
        regional = select(MERCHANTS.c.id).where(MERCHANTS.c.region == bindparam("region"))
        stmt = stmt.where(t.merchant_id.in_(regional))
    if after:
        stmt = stmt.where(t.serial > bindparam("after"))
    stmt = stmt.order_by(t.serial).limit(bindparam("limit", type_=Integer))
    _STATEMENTS[key] = stmt
    return stmt


def terminal_page(
    engine: Engine, flt: TerminalFilter, *, after: str | None = None, limit: int = 50
) -> TerminalPage:
    """Up to ``limit`` terminals matching ``flt`` whose serial sorts after ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"a page holds 1 to {MAX_PAGE} terminals", where="limit")
    flt.check()
    stmt = _page_statement(flt.shape(), bool(after))
    params = flt.params() | {"after": after, "limit": limit + 1}
    with engine.connect() as conn:
        result = conn.execute(stmt, params)
        keys = list(result.keys())
        rows = [dict(zip(keys, r, strict=True)) for r in result.all()]
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
