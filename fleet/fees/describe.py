"""Fee rules in words, and the difference between two tables rule by rule. Pure."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fleet.core.money import format_minor
from protocols.feetable import MAX_MCC, PPM, FeeRule, FeeTable
from protocols.values import CardType

__all__ = ["card_name", "describe_rule", "format_rate", "rule_diff"]


def card_name(card: int) -> str:
    return CardType(card).name.lower()


def format_rate(ppm: int) -> str:
    """A rate in ppm as a percent string.

    >>> format_rate(6000), format_rate(125), format_rate(20000)
    ('0.60%', '0.0125%', '2.00%')
    """
    percent = Decimal(ppm) / (PPM // 100)
    text = f"{percent:.4f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{percent:.2f}"
    return f"{text}%"


def describe_rule(rule: FeeRule | None, table: FeeTable | None) -> str:
    """``credit MCC 5411: 0.60% + 0.10, min 0.50, max 20.00`` (money in the table's
    currency, with its own decimals)."""
    if rule is None or table is None:
        return ""
    mcc = (
        "all MCC"
        if (rule.mcc_lo, rule.mcc_hi) == (0, MAX_MCC)
        else (
            f"MCC {rule.mcc_lo:04d}"
            if rule.mcc_lo == rule.mcc_hi
            else f"MCC {rule.mcc_lo:04d}-{rule.mcc_hi:04d}"
        )
    )
    text = f"{card_name(rule.card_type)} {mcc}: {format_rate(rule.rate_ppm)}"
    if rule.fixed:
        text += f" + {format_minor(rule.fixed, table.currency)}"
    if rule.min_fee:
        text += f", min {format_minor(rule.min_fee, table.currency)}"
    if rule.max_fee:
        text += f", max {format_minor(rule.max_fee, table.currency)}"
    return text


def rule_diff(old: FeeTable | None, new: FeeTable) -> list[dict[str, Any]]:
    """Rules matched by what they select (card type and MCC range): ``added``, ``removed``,
    ``changed`` (pricing), ``moved`` (same pricing, another place in the match order —
    which can change which rule prices a sale)."""

    def keyed(table: FeeTable | None) -> dict[tuple[int, int, int], tuple[int, FeeRule]]:
        found: dict[tuple[int, int, int], tuple[int, FeeRule]] = {}
        for i, r in enumerate(table.rules if table is not None else ()):
            found.setdefault((int(r.card_type), r.mcc_lo, r.mcc_hi), (i, r))
        return found

    before, after = keyed(old), keyed(new)
    rows: list[dict[str, Any]] = []
    for key in sorted(set(before) | set(after), key=lambda k: (after.get(k) or before[k])[0]):
        a, b = before.get(key), after.get(key)
        if a is None and b is not None:
            change, where = "added", f"{b[0]}"
        elif b is None and a is not None:
            change, where = "removed", f"{a[0]}"
        elif a is not None and b is not None and a[1] != b[1]:
            change, where = "changed", f"{a[0]}→{b[0]}" if a[0] != b[0] else f"{b[0]}"
        elif a is not None and b is not None and a[0] != b[0]:
            change, where = "moved", f"{a[0]}→{b[0]}"
        else:
            continue
        rows.append(
            {
                "rule": where,
                "change": change,
                "old": describe_rule(a[1] if a else None, old),
                "new": describe_rule(b[1] if b else None, new),
            }
        )
    return rows
