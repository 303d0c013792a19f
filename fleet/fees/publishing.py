"""Publishing fee tables: versions, the notice-period rule, targets and fee-change notices.

A published table is immutable: its TOML, its wire bytes and their SHA-256 are stored, and
versions strictly increase. Each merchant's **target** is the newest published table whose
group includes it; each terminal's target is its merchant's.

**Notice period**: when a new table raises any affected merchant's fee on the policy's
typical basket, its effective time must be at least ``notice_period`` after publication;
:func:`publish` refuses a shorter one unless given an override reason, which is audited.
Reductions may take effect at once. Publishing queues one ``fee_change`` notice per
merchant whose basket fee changes, in the same transaction (the notices outbox).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.models import FEE_TABLES, MERCHANTS, NOTICES, TERMINALS, now
from fleet.core.policy import FeePolicy
from fleet.fees.tablefile import (
    BasketItem,
    FeeFileError,
    Group,
    ParsedTable,
    basket_fees,
    exponent_of,
    format_minor,
    parse_basket,
    parse_fee_toml,
    sha256,
)
from protocols.feetable import FeeTable

__all__ = [
    "Impact",
    "NoticePeriodError",
    "Plan",
    "Published",
    "load_tables",
    "plan",
    "publish",
    "targeted_terminals",
    "targets",
]


class NoticePeriodError(Exception):
    """A raise that takes effect sooner than the notice period allows."""


@dataclass(frozen=True, slots=True)
class Published:
    version: int
    name: str
    table: FeeTable
    group: Group
    sha256: str
    published_at: datetime
    published_by: str
    raises: bool
    notice_override: str | None


def load_tables(conn: Connection) -> dict[int, Published]:
    """Every published table, by version (tables are few; the bytes are small)."""
    found: dict[int, Published] = {}
    for row in conn.execute(select(FEE_TABLES).order_by(FEE_TABLES.c.version)):
        found[row.version] = Published(
            row.version,
            row.name,
            FeeTable.from_bytes(row.wire),
            Group.from_dict(row.group),
            row.sha256,
            row.published_at,
            row.published_by,
            row.raises,
            row.notice_override,
        )
    return found


def _merchants(conn: Connection, group: Group) -> Iterator[Any]:
    stmt = select(MERCHANTS.c.id, MERCHANTS.c.mcc, MERCHANTS.c.region, MERCHANTS.c.tags)
    if group.regions:
        stmt = stmt.where(MERCHANTS.c.region.in_(group.regions))
    for row in conn.execute(stmt.order_by(MERCHANTS.c.id).execution_options(yield_per=5000)):
        if group.includes(row.mcc, row.region, row.tags or []):
            yield row


def targets(conn: Connection, tables: dict[int, Published] | None = None) -> dict[str, int]:
    """Merchant id → the version of its target table (merchants no table covers: absent)."""
    tables = load_tables(conn) if tables is None else tables
    out: dict[str, int] = {}
    for version in sorted(tables):  # newer versions overwrite
        for row in _merchants(conn, tables[version].group):
            out[row.id] = version
    return out


@dataclass(frozen=True, slots=True)
class Impact:
    merchant_id: str
    mcc: int
    old_version: int | None
    old_fee: int | None
    new_fee: int

    @property
    def raised(self) -> bool:
        return self.old_fee is not None and self.new_fee > self.old_fee

    @property
    def changed(self) -> bool:
        return self.old_fee != self.new_fee


@dataclass(frozen=True)
class Plan:
    """What publishing a table would do."""

    version: int
    parsed: ParsedTable
    table: FeeTable
    impacts: list[Impact]
    basket: tuple[BasketItem, ...]
    notice_days: int
    published_at: datetime

    @property
    def raises(self) -> list[Impact]:
        return [i for i in self.impacts if i.raised]

    @property
    def earliest_effective(self) -> datetime:
        """The earliest effective time the notice period allows (a raise)."""
        return self.published_at + timedelta(days=self.notice_days)

    @property
    def notice_ok(self) -> bool:
        return not self.raises or self.table.effective >= self.earliest_effective

    def money(self, minor: int | None) -> str:
        return "" if minor is None else format_minor(minor, exponent_of(self.table.currency))


def read_table_file(path: Path) -> tuple[str, ParsedTable]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FeeFileError(f"{path}: {exc.strerror}") from None
    return text, parse_fee_toml(text, str(path))


def plan(
    conn: Connection,
    parsed: ParsedTable,
    policy: FeePolicy,
    *,
    at: datetime | None = None,
    version: int | None = None,
) -> Plan:
    """The impact of publishing ``parsed`` now (or ``at``), per affected merchant."""
    tables = load_tables(conn)
    latest = max(tables, default=0)
    number = version if version is not None else latest + 1
    if number <= latest:
        raise FeeFileError(f"version {number} is not above the latest published ({latest})")
    table = parsed.table(number)
    basket = parse_basket(policy.basket, parsed.currency)
    current = targets(conn, tables)
    impacts = []
    for row in _merchants(conn, parsed.group):
        old_version = current.get(row.id)
        old = tables[old_version].table if old_version is not None else None
        new_fee = basket_fees(table, row.mcc, basket)
        assert new_fee is not None
        impacts.append(
            Impact(row.id, row.mcc, old_version, basket_fees(old, row.mcc, basket), new_fee)
        )
    return Plan(number, parsed, table, impacts, basket, policy.notice_days, at or now())


def publish(
    engine: Engine,
    path: Path,
    *,
    actor: str,
    policy: FeePolicy,
    override_reason: str | None = None,
    at: datetime | None = None,
) -> Plan:
    """Store the table of ``path`` as the next version, queue its notices, audit it.

    Raises :class:`NoticePeriodError` for a raise inside the notice period without
    ``override_reason``, and :class:`~fleet.fees.tablefile.FeeFileError` for a bad file.
    """
    source, parsed = read_table_file(path)
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # one publisher at a time: versions stay dense
            conn.exec_driver_sql("LOCK TABLE fee_table IN EXCLUSIVE MODE")
        p = plan(conn, parsed, policy, at=at)
        if not p.notice_ok:
            first = p.raises[0]
            detail = (
                f"raises the fee of {len(p.raises)} merchant(s) (e.g. {first.merchant_id}: "
                f"{p.money(first.old_fee)} → {p.money(first.new_fee)} on the typical basket) "
                f"but takes effect {p.table.effective.isoformat()}, before "
                f"{p.earliest_effective.isoformat()} ({p.notice_days} days' notice)"
            )
            if not override_reason:
                raise NoticePeriodError(f"{path}: {detail}; use --override-notice --reason TEXT")
            audit.record(
                conn,
                actor=actor,
                action="override",
                target=f"fee_table:{p.version}",
                details={"rule": "notice_period", "detail": detail},
                reason=override_reason,
                at=p.published_at,
            )
        wire = p.table.to_bytes()
        conn.execute(
            insert(FEE_TABLES).values(
                version=p.version,
                name=parsed.name,
                currency=parsed.currency,
                effective=p.table.effective,
                group=parsed.group.as_dict(),
                wire=wire,
                sha256=sha256(wire),
                source=source,
                published_at=p.published_at,
                published_by=actor,
                raises=bool(p.raises),
                notice_override=override_reason if not p.notice_ok else None,
            )
        )
        notices = [
            {
                "kind": "fee_change",
                "merchant_id": i.merchant_id,
                "ref": f"fee:{p.version}",
                "payload": {
                    "version": p.version,
                    "old_version": i.old_version,
                    "effective": p.table.effective.isoformat(),
                    "currency": parsed.currency_alpha,
                    "basket_old": i.old_fee,
                    "basket_new": i.new_fee,
                    "direction": "up" if i.raised else "down" if i.old_fee is not None else "new",
                    "reason": parsed.description or parsed.name or f"fee table {p.version}",
                    "sales": len(p.basket),
                    "basket_total": sum(b.amount for b in p.basket),
                },
                "created_at": p.published_at,
                "status": "queued",
            }
            for i in p.impacts
            if i.changed
        ]
        for start in range(0, len(notices), 5000):
            conn.execute(insert(NOTICES), notices[start : start + 5000])
        audit.record(
            conn,
            actor=actor,
            action="publish",
            target=f"fee_table:{p.version}",
            details={
                "file": str(path),
                "sha256": sha256(wire),
                "effective": p.table.effective.isoformat(),
                "group": parsed.group.describe(),
                "merchants": len(p.impacts),
                "raised": len(p.raises),
                "notices": len(notices),
            },
            at=p.published_at,
        )
    return p


def targeted_terminals(
    conn: Connection, version: int, group: Group, tables: dict[int, Published] | None = None
) -> list[str]:
    """Serials (sorted) of the deployed and faulty terminals with a link whose target is
    ``version`` and whose merchant is in ``group``: what a push or a rollout of it covers."""
    merchant_target = targets(conn, tables)
    rows = conn.execute(
        select(
            TERMINALS.c.serial,
            TERMINALS.c.merchant_id,
            MERCHANTS.c.mcc,
            MERCHANTS.c.region,
            MERCHANTS.c.tags,
        )
        .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
        .where(
            TERMINALS.c.status.in_(("deployed", "faulty")),
            TERMINALS.c.link.is_not(None),
            TERMINALS.c.link != "",
        )
        .order_by(TERMINALS.c.serial)
    ).all()
    return [
        r.serial
        for r in rows
        if merchant_target.get(r.merchant_id) == version
        and group.includes(r.mcc, r.region, r.tags or [])
    ]
