"""Terminals: the record (its schema and the rules across its cells), and the work on
single terminals — find, list, add, update, record where each is reached, show.

Every write goes through the checks an import applies (:func:`check_terminal`), in one
transaction with its audit entry; a refused change names the terminal and the column.
The streamed import of a whole inventory is :mod:`fleet.inventory.terminal_import`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.exc import IntegrityError

from fleet.core import audit, clock
from fleet.core.clock import today_in
from fleet.core.db import writer
from fleet.core.errors import NotFoundError
from fleet.core.models import FIRMWARE, MERCHANTS, MODELS, TERMINALS, Audit, TerminalModel
from fleet.core.records import Column, RejectedFileError, Row, RowError, Schema
from fleet.core.status import LIVE_STATUSES, Status
from fleet.core.values import parse_date, parse_datetime, parse_link, parse_serial
from fleet.inventory.cells import count, fixed_ascii, status, token
from fleet.inventory.importing import schema_defaults, upsert

__all__ = [
    "TERMINAL",
    "TERMINAL_COLUMNS",
    "TERMINAL_HEADER",
    "CatalogRefs",
    "TerminalChange",
    "TerminalDetail",
    "add_terminal",
    "check_terminal",
    "get_terminal",
    "iter_terminals",
    "linked_serials",
    "set_links",
    "terminal_cells",
    "terminal_detail",
    "update_terminal",
]

TERMINAL = Schema(
    "terminals",
    (
        Column("serial", parse_serial),
        Column("model", token(40, "model code")),
        Column("firmware", token(40, "firmware version")),
        Column("tid", fixed_ascii(8, "TID"), required=False),
        Column("mid", fixed_ascii(15, "MID"), required=False),
        Column("merchant_id", token(15, "merchant id"), required=False),
        Column("manufactured_on", parse_date, required=False),
        Column("deployed_on", parse_date, required=False),
        Column("status", status),
        Column("link", parse_link, required=False),
        Column("fault_count", count, required=False, default=0),
        Column("last_seen", parse_datetime, required=False),
        Column("active_version", count, required=False, default=0),
        Column("pending_version", count, required=False, default=0),
    ),
)
TERMINAL_COLUMNS = tuple(c.name for c in TERMINAL.columns)
"""An inventory file's columns, in the export's order."""
TERMINAL_HEADER = (
    "serial",
    "model",
    "firmware",
    "tid",
    "mid",
    "merchant_id",
    "manufactured_on",
    "deployed_on",
    "status",
    "link",
)
"""Columns an inventory file must have (cells may be empty where the status allows)."""

LIVE = tuple(s.value for s in LIVE_STATUSES)
_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a terminal's ``last_seen`` may be."""


@dataclass
class CatalogRefs:
    """What a terminal's cells may refer to: models, firmware versions, merchants (and each
    merchant's time zone, whose calendar its terminals' ``deployed_on`` is on)."""

    models: set[str]
    firmware: set[tuple[str, str]]
    merchants: dict[str, str]
    """Merchant id → IANA time zone."""
    _days: dict[str | None, date] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection) -> CatalogRefs:
        return cls(
            set(conn.execute(select(MODELS.c.code)).scalars()),
            {(r[0], r[1]) for r in conn.execute(select(FIRMWARE.c.model, FIRMWARE.c.version))},
            {r.id: r.timezone for r in conn.execute(select(MERCHANTS.c.id, MERCHANTS.c.timezone))},
        )

    def today(self, merchant: str | None, at: datetime) -> date:
        """Today at ``at`` on the merchant's calendar (no merchant: the latest date
        anywhere; :mod:`fleet.core.clock`), one computation per zone."""
        zone = self.merchants.get(merchant) if merchant else None
        if zone not in self._days:
            self._days[zone] = today_in(zone, at)
        return self._days[zone]


def check_terminal(v: dict[str, Any], catalog: CatalogRefs, at: datetime) -> list[tuple[str, str]]:
    """Rules across a terminal's cells and the catalog: (column, reason) for each breach.
    ``at``: the instant of the check; a date is in the future when it has not begun on its
    own calendar (:mod:`fleet.core.clock`)."""
    problems: list[tuple[str, str]] = []
    model = v["model"]
    if model not in catalog.models:
        problems.append(("model", f"unknown model {model}"))
    elif (model, v["firmware"]) not in catalog.firmware:
        problems.append(("firmware", f"unknown firmware {v['firmware']} for model {model}"))
    merchant = v.get("merchant_id")
    if merchant and merchant not in catalog.merchants:
        problems.append(("merchant_id", f"unknown merchant {merchant}"))
    state = v["status"]
    if state in LIVE:
        for name in ("merchant_id", "tid", "mid", "deployed_on"):
            if not v.get(name):
                problems.append((name, f"required for a {state} terminal"))
    elif state == Status.IN_STOCK and v.get("merchant_id"):
        problems.append(("merchant_id", "an in_stock terminal has no merchant (deployed?)"))
    made, deployed = v.get("manufactured_on"), v.get("deployed_on")
    if made and made > catalog.today(None, at):  # the latest date anywhere
        problems.append(("manufactured_on", f"{made} is in the future"))
    if deployed and deployed > catalog.today(merchant, at):  # on the merchant's calendar
        problems.append(("deployed_on", f"{deployed} is in the future"))
    if made and deployed and deployed < made:
        problems.append(("deployed_on", f"{deployed} is before manufactured_on {made}"))
    seen = v.get("last_seen")
    if seen and seen > at.replace(microsecond=0) + _SKEW:
        problems.append(("last_seen", f"{seen.isoformat()} is in the future"))
    return problems


def terminal_cells(t: Mapping[str, Any]) -> dict[str, str]:
    """A terminal's values as inventory cells (the export's shape; ``import`` reads it back)."""
    cells: dict[str, str] = {}
    for name in TERMINAL_COLUMNS:
        value = t.get(name)
        if value is None:
            cells[name] = ""
        elif isinstance(value, datetime):
            cells[name] = value.astimezone(UTC).isoformat()
        elif isinstance(value, date):
            cells[name] = value.isoformat()
        else:
            cells[name] = str(value)
    return cells


# --- reading ---------------------------------------------------------------------------


def get_terminal(conn: Connection, serial: str) -> dict[str, Any] | None:
    """One terminal's columns by name, or none."""
    row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == serial)).first()
    return dict(row._mapping) if row else None


def iter_terminals(
    engine: Engine,
    limit: int | None = None,
    *,
    not_seen_since: datetime | None = None,
    **filters: Any,
) -> Iterator[dict[str, Any]]:
    """Terminals by serial as column → value, filtered by equal columns, streamed;
    ``not_seen_since``: only those not heard from since then (never seen included)."""
    table = TERMINALS
    stmt = select(table).order_by(table.c.serial)
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(table.c[name] == value)
    if not_seen_since is not None:
        stmt = stmt.where(or_(table.c.last_seen.is_(None), table.c.last_seen < not_seen_since))
    if limit:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        for row in conn.execute(stmt.execution_options(yield_per=5000)):
            yield dict(row._mapping)


def linked_serials(engine: Engine) -> list[str]:
    """Serials of the deployed and faulty terminals the fleet knows how to reach."""
    stmt = (
        select(TERMINALS.c.serial)
        .where(TERMINALS.c.status.in_(LIVE), TERMINALS.c.link.is_not(None), TERMINALS.c.link != "")
        .order_by(TERMINALS.c.serial)
    )
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


@dataclass(frozen=True, slots=True)
class TerminalDetail:
    terminal: dict[str, Any]
    """Its columns by name."""
    model: TerminalModel | None
    history: tuple[Audit, ...]
    """Its audit entries, oldest first."""


def terminal_detail(engine: Engine, serial: str) -> TerminalDetail:
    """One terminal, its model and its audit history; :class:`NotFoundError` if unknown."""
    with engine.connect() as conn:
        row = get_terminal(conn, serial)
        if row is None:
            raise NotFoundError("unknown terminal", where=serial)
        model = conn.execute(select(MODELS).where(MODELS.c.code == row["model"])).first()
    history = tuple(audit.query(engine, audit.AuditFilter(target=f"terminal:{serial}")))
    return TerminalDetail(row, TerminalModel(**model._mapping) if model else None, history)


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TerminalChange:
    serial: str
    before: dict[str, Any] | None
    """None for a terminal just added."""
    after: dict[str, Any]

    def changed(self) -> dict[str, tuple[str, str]]:
        """Column → (old cell, new cell) for every cell that changed."""
        old, new = terminal_cells(self.before or {}), terminal_cells(self.after)
        return {k: (old[k], new[k]) for k in new if old[k] != new[k]}


def add_terminal(
    engine: Engine,
    serial: str,
    cells: Mapping[str, str],
    *,
    actor: str,
    reason: str = "",
    at: datetime | None = None,
) -> TerminalChange:
    """Add one terminal from cells as typed (``{"model": "PF-300", …}``), checked like an
    import row (``at``: the instant of the check, default now); :class:`RejectedFileError`
    naming the terminal when it is refused."""
    with writer(engine).begin() as conn:
        if get_terminal(conn, serial) is not None:
            raise _refused(serial, [_error(serial, "serial", "already exists")])
        cells = {"serial": serial, **cells}
        return _write(conn, serial, None, cells, actor, reason, at or clock.now())


def update_terminal(
    engine: Engine,
    serial: str,
    changes: Mapping[str, str],
    *,
    actor: str,
    reason: str = "",
    add_fault: bool = False,
    at: datetime | None = None,
) -> TerminalChange:
    """Change one terminal's cells (``{"status": "faulty"}``), checked like an import row
    (``at``: the instant of the check, default now); ``add_fault`` records one more fault
    than it has (or than ``changes`` says)."""
    with writer(engine).begin() as conn:
        before = get_terminal(conn, serial)
        if before is None:
            raise NotFoundError("unknown terminal", where=serial)
        cells = terminal_cells(before) | dict(changes)
        if add_fault:
            cells["fault_count"] = str(int(changes.get("fault_count", before["fault_count"])) + 1)
        return _write(conn, serial, before, cells, actor, reason, at or clock.now())


def _where(serial: str) -> str:
    return f"terminal {serial}"


def _error(serial: str, column: str, reason: str) -> RowError:
    return RowError(_where(serial), "", column, reason)


def _refused(serial: str, errors: list[RowError]) -> RejectedFileError:
    return RejectedFileError(errors, where=_where(serial))


def _write(
    conn: Connection,
    serial: str,
    before: dict[str, Any] | None,
    cells: dict[str, str],
    actor: str,
    reason: str,
    at: datetime,
) -> TerminalChange:
    errors: list[RowError] = []
    v = TERMINAL.parse(Row(_where(serial), "", cells), errors)
    if v is not None:
        if v["serial"] != serial:
            errors.append(_error(serial, "serial", "cannot change a serial"))
        catalog = CatalogRefs.load(conn)
        for column, why in check_terminal(v, catalog, at):
            errors.append(_error(serial, column, why))
    if errors or v is None:
        raise _refused(serial, errors)
    after = schema_defaults(TERMINAL) | v
    try:
        with conn.begin_nested():
            upsert(conn, TERMINALS, [after], ["serial"], list(after))
    except IntegrityError:
        holder = conn.execute(
            select(TERMINALS.c.serial).where(
                TERMINALS.c.tid == after["tid"], TERMINALS.c.status.in_(LIVE)
            )
        ).scalar()
        raise _refused(
            serial, [_error(serial, "tid", f"TID {after['tid']} is in use by {holder}")]
        ) from None
    change = TerminalChange(serial, before, after)
    audit.record(
        conn,
        actor=actor,
        action="update" if before else "add",
        target=f"terminal:{serial}",
        details=(
            {k: list(pair) for k, pair in change.changed().items()}
            if before
            else {k: v for k, v in terminal_cells(after).items() if v}
        ),
        reason=reason,
    )
    return change


def set_links(engine: Engine, links: Mapping[str, str], *, actor: str, reason: str = "") -> int:
    """Record where terminals are reached (serial → link URL), in one transaction, audited.

    Every serial must be known and every URL valid, or nothing is written."""
    errors = []
    for serial, url in links.items():
        try:
            parse_link(url)
        except ValueError as exc:
            errors.append(_error(serial, "link", str(exc)))
    with writer(engine).begin() as conn:
        known = set(
            conn.execute(
                select(TERMINALS.c.serial).where(TERMINALS.c.serial.in_(list(links)))
            ).scalars()
        )
        errors += [_error(s, "serial", "unknown terminal") for s in links if s not in known]
        if errors:
            raise RejectedFileError(errors, where="terminal links")
        for serial, url in links.items():
            conn.execute(update(TERMINALS).where(TERMINALS.c.serial == serial).values(link=url))
        audit.record(
            conn,
            actor=actor,
            action="update",
            target=f"links:{len(links)}",
            details={"links": dict(links)} if len(links) <= 50 else {"count": len(links)},
            reason=reason,
        )
    return len(links)
