"""Two published tables compared: rule by rule, and what each merchant of either group
pays on the typical basket before and after (``posfleet fees diff``, the console)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, or_, select

from fleet.core.models import MERCHANTS
from fleet.core.money import format_minor
from fleet.core.policy import FeePolicy
from fleet.fees.basket import BasketItem, basket_fees, fee_direction, parse_basket
from fleet.fees.describe import rule_diff
from fleet.fees.tables import load_tables, published
from fleet.fees.targets import covers

__all__ = ["FeeDiff", "MerchantChange", "fee_diff"]


@dataclass(frozen=True, slots=True)
class MerchantChange:
    """A merchant's fee on the basket under each table (None: the table does not cover it)."""

    merchant_id: str
    name: str
    mcc: int
    before: int | None
    after: int | None

    @property
    def change(self) -> int:
        return (self.after or 0) - (self.before or 0)

    @property
    def direction(self) -> str:
        """``up``, ``down``, ``new`` (its first table), ``gone`` or ``same``
        (:func:`fleet.fees.basket.fee_direction`, the rule ``fees publish`` counts by)."""
        return fee_direction(self.before, self.after)

    @property
    def raised(self) -> bool:
        return self.direction == "up"


@dataclass(frozen=True)
class FeeDiff:
    old: int
    new: int
    currency: int
    """The new table's currency (ISO 4217 numeric): what the basket and fees are in."""
    rules: list[dict[str, Any]]
    basket: tuple[BasketItem, ...]
    merchants: list[MerchantChange]
    """Merchants whose basket fee changes, the largest change first."""

    def money(self, minor: int | None) -> str:
        return "" if minor is None else format_minor(minor, self.currency)

    def basket_text(self) -> str:
        return ", ".join(f"{self.money(i.amount)} {i.card.name.lower()}" for i in self.basket)


def fee_diff(conn: Connection, old: int, new: int, policy: FeePolicy) -> FeeDiff:
    """Compare published tables ``old`` and ``new`` (see the module's notes)."""
    tables = load_tables(conn)
    a, b = published(tables, old), published(tables, new)
    basket = parse_basket(policy.basket, b.table.currency)
    dialect = conn.dialect.name
    in_a = covers(a.group, a.table.currency, dialect)
    in_b = covers(b.group, b.table.currency, dialect)
    changes = []
    for row in conn.execute(
        select(
            MERCHANTS.c.id,
            MERCHANTS.c.name,
            MERCHANTS.c.mcc,
            in_a.label("in_a"),
            in_b.label("in_b"),
        )
        .where(or_(in_a, in_b))
        .order_by(MERCHANTS.c.id)
    ):
        before = basket_fees(a.table, row.mcc, basket) if row.in_a else None
        after = basket_fees(b.table, row.mcc, basket) if row.in_b else None
        if before != after:
            changes.append(MerchantChange(row.id, row.name, row.mcc, before, after))
    changes.sort(key=lambda c: -abs(c.change))
    return FeeDiff(old, new, b.table.currency, rule_diff(a.table, b.table), basket, changes)
