"""The typical basket a fee change is judged on, and what a merchant pays on it. Pure.

>>> from fleet.core.money import format_minor
>>> from fleet.fees.tablefile import parse_fee_toml
>>> t = parse_fee_toml('currency = "VND"\\neffective = 2027-01-01T00:00:00Z\\n'
...                    '[[rules]]\\nrate = "1%"').table(1)
>>> basket = parse_basket([("25000", "debit"), ("80000", "credit")], t.currency)
>>> basket_fees(t, 5411, basket), format_minor(basket_fees(t, 5411, basket), t.currency)
(1050, '1050')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet.core.money import MoneyError, parse_minor
from fleet.fees.errors import FeeFileError
from protocols.feetable import FeeTable, NoFeeRuleError, compute_fee
from protocols.values import CardType

__all__ = ["DEFAULT_BASKET", "BasketItem", "Impact", "basket_fees", "fee_direction", "parse_basket"]

_CARDS = {c.name.lower(): c for c in CardType}


@dataclass(frozen=True, slots=True)
class BasketItem:
    """One sale of the typical basket a fee change is judged on."""

    amount: int
    card: CardType


DEFAULT_BASKET = (
    ("25.00", "debit"),
    ("80.00", "credit"),
    ("300.00", "credit"),
    ("60.00", "qr_wallet"),
)


def parse_basket(items: Sequence[tuple[str, str]], currency: int) -> tuple[BasketItem, ...]:
    """The policy's basket (amounts in units of the table's currency) → sales in minor units."""
    basket = []
    for i, (amount, card) in enumerate(items):
        if card not in _CARDS or card == "any":
            raise FeeFileError(f"basket[{i}].card: {card!r}")
        try:
            minor = parse_minor(amount, currency)
        except MoneyError as exc:
            raise FeeFileError(exc.message, where=f"basket[{i}].amount") from None
        basket.append(BasketItem(minor, _CARDS[card]))
    return tuple(basket)


def basket_fees(table: FeeTable | None, mcc: int, basket: Sequence[BasketItem]) -> int | None:
    """The total fee of the basket for a merchant of ``mcc``; None without a table.

    A sale no rule prices (the terminal would refuse it with 57) counts as no fee.
    """
    if table is None:
        return None
    total = 0
    for item in basket:
        try:
            total += compute_fee(table, item.amount, item.card, mcc)
        except NoFeeRuleError:
            continue
    return total


def fee_direction(before: int | None, after: int | None) -> str:
    """How a merchant's basket fee moves — the one rule ``fees publish``, ``fees diff`` and
    the notices count by: ``up`` and ``down`` compare two fees; a merchant getting its first
    table is ``new`` (not a raise: it paid no table's fee before), one a table stops
    covering is ``gone``, and ``same`` is no change.

    >>> [fee_direction(*p) for p in [(100, 120), (120, 100), (None, 90), (90, None), (5, 5)]]
    ['up', 'down', 'new', 'gone', 'same']
    """
    if before == after:
        return "same"
    if before is None:
        return "new"
    if after is None:
        return "gone"
    return "up" if after > before else "down"


@dataclass(frozen=True, slots=True)
class Impact:
    """One merchant's fee on the basket before (its current target) and after a table."""

    merchant_id: str
    mcc: int
    old_version: int | None
    old_fee: int | None
    new_fee: int

    @property
    def direction(self) -> str:
        return fee_direction(self.old_fee, self.new_fee)

    @property
    def raised(self) -> bool:
        return self.direction == "up"

    @property
    def lowered(self) -> bool:
        return self.direction == "down"

    @property
    def changed(self) -> bool:
        return self.old_fee != self.new_fee
