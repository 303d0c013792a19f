"""Publishing fee tables: versions, the notice-period rule and fee-change notices.

A published table is immutable: its TOML, its wire bytes and their SHA-256 are stored, and
versions strictly increase. Which table each merchant should have is
:mod:`fleet.fees.targets`' business.

**Notice period**: when a new table raises any affected merchant's fee on the policy's
typical basket, its effective time must be at least ``notice_period`` after publication;
:func:`publish` refuses a shorter one unless given an override reason, which is audited.
Reductions may take effect at once. Publishing queues one ``fee_change`` notice per
merchant whose basket fee changes, in the same transaction (the notices outbox). The notice
states the publication's **reason code** (``fee_review`` unless given), worded in the
merchant's language from :mod:`fleet.notices.reasons`; the table's name and description
are the operator's and never reach a merchant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, insert

from fleet.core import audit
from fleet.core.db import writer
from fleet.core.files import FileTextError, read_text
from fleet.core.models import FEE_TABLES, now
from fleet.core.money import format_minor
from fleet.core.policy import FeePolicy
from fleet.fees.basket import BasketItem, Impact, basket_fees, parse_basket
from fleet.fees.errors import FeeFileError, NoticePeriodError
from fleet.fees.tablefile import ParsedTable, parse_fee_toml, sha256
from fleet.fees.tables import load_tables
from fleet.fees.targets import foreign_merchants, merchants_in
from fleet.notices import FeeChange, queue_many
from fleet.notices.reasons import FEE_CODES
from fleet.notices.reasons import reason_code as checked
from protocols.feetable import FeeTable

__all__ = ["Plan", "plan", "publish", "read_table_file"]


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
    foreign: tuple[tuple[str, str], ...] = ()
    """Merchants of the group the table leaves out, paid in another currency (id, country)."""
    reason_code: str = "fee_review"
    """Why, as the merchants read it (:mod:`fleet.notices.reasons`; never the file's text)."""

    @property
    def raises(self) -> list[Impact]:
        return [i for i in self.impacts if i.raised]

    @property
    def lowered(self) -> list[Impact]:
        return [i for i in self.impacts if i.lowered]

    @property
    def earliest_effective(self) -> datetime:
        """The earliest effective time the notice period allows (a raise)."""
        return self.published_at + timedelta(days=self.notice_days)

    @property
    def notice_ok(self) -> bool:
        return not self.raises or self.table.effective >= self.earliest_effective

    def money(self, minor: int | None) -> str:
        return "" if minor is None else format_minor(minor, self.table.currency)

    def notices(self) -> list[tuple[str, FeeChange]]:
        """The ``fee_change`` notice of each merchant whose basket fee changes."""
        return [
            (
                i.merchant_id,
                FeeChange(
                    version=self.version,
                    old_version=i.old_version,
                    effective=self.table.effective,
                    currency=self.parsed.currency_alpha,
                    basket_old=i.old_fee,
                    basket_new=i.new_fee,
                    direction="up" if i.raised else "new" if i.old_fee is None else "down",
                    reason_code=self.reason_code,
                    sales=len(self.basket),
                    basket_total=sum(b.amount for b in self.basket),
                ),
            )
            for i in self.impacts
            if i.changed
        ]


def read_table_file(path: Path) -> tuple[str, ParsedTable]:
    try:
        text = read_text(path)
    except FileTextError as exc:
        raise FeeFileError(str(exc)) from None
    return text, parse_fee_toml(text, str(path))


def plan(
    conn: Connection,
    parsed: ParsedTable,
    policy: FeePolicy,
    *,
    at: datetime | None = None,
    version: int | None = None,
    reason_code: str = "fee_review",
) -> Plan:
    """The impact of publishing ``parsed`` now (or ``at``), per affected merchant.
    ``reason_code``: why, from the catalogue (:mod:`fleet.notices.reasons`)."""
    reason_code = checked(reason_code, allowed=FEE_CODES)
    tables = load_tables(conn)
    latest = max(tables, default=0)
    number = version if version is not None else latest + 1
    if number <= latest:
        raise FeeFileError(f"version {number} is not above the latest published ({latest})")
    table = parsed.table(number)
    basket = parse_basket(policy.basket, parsed.currency)
    impacts = []
    for row in merchants_in(conn, parsed.group, tables, currency=parsed.currency):
        old = tables[row.target].table if row.target is not None else None
        new_fee = basket_fees(table, row.mcc, basket)
        assert new_fee is not None
        impacts.append(
            Impact(row.id, row.mcc, row.target, basket_fees(old, row.mcc, basket), new_fee)
        )
    foreign = tuple(
        (r.id, r.country) for r in foreign_merchants(conn, parsed.group, parsed.currency)
    )
    return Plan(
        number, parsed, table, impacts, basket, policy.notice_days, at or now(), foreign,
        reason_code,
    )  # fmt: skip


def publish(
    engine: Engine,
    path: Path,
    *,
    actor: str,
    policy: FeePolicy,
    override_reason: str | None = None,
    at: datetime | None = None,
    reason_code: str = "fee_review",
) -> Plan:
    """Store the table of ``path`` as the next version, queue its notices, audit it.

    Raises :class:`NoticePeriodError` for a raise inside the notice period without
    ``override_reason``, and :class:`~fleet.fees.errors.FeeFileError` for a bad file.
    """
    source, parsed = read_table_file(path)
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # one publisher at a time: versions stay dense
            conn.exec_driver_sql("LOCK TABLE fee_table IN EXCLUSIVE MODE")
        p = plan(conn, parsed, policy, at=at, reason_code=reason_code)
        if not p.notice_ok:
            first = p.raises[0]
            detail = (
                f"raises the fee of {len(p.raises)} merchant(s) (e.g. {first.merchant_id}: "
                f"{p.money(first.old_fee)} → {p.money(first.new_fee)} on the typical basket) "
                f"but takes effect {p.table.effective.isoformat()}, before "
                f"{p.earliest_effective.isoformat()} ({p.notice_days} days' notice)"
            )
            if not override_reason:
                raise NoticePeriodError(
                    f"{detail}; publishing it needs an override reason (audited)",
                    where=str(path),
                )
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
        notices = p.notices()
        queue_many(conn, notices, ref=f"fee:{p.version}", at=p.published_at)
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
                "left_out_other_currency": len(p.foreign),
                "raised": len(p.raises),
                "notices": len(notices),
                "reason_code": p.reason_code,
            },
            at=p.published_at,
        )
    return p
