"""Parsers of the cells that only inventory records have (a TID, a status, an amount…).
Pure: text in, typed value out, or ``ValueError`` whose message is the reason (the file,
line and column are added by :mod:`fleet.core.records`).

>>> tid = fixed_ascii(8, "TID")
>>> tid(" T0000001 ")
'T0000001'
>>> tid("T1")
Traceback (most recent call last):
ValueError: TID must be 8 printable ASCII characters, not 'T1'
>>> status("In Stock"), severity("HIGH"), amount("1,299.00")
('in_stock', 'high', '1,299.00')
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from fleet.core.status import Status
from fleet.core.values import parse_int, parse_token

__all__ = [
    "SEVERITIES",
    "amount",
    "bounded_text",
    "count",
    "fixed_ascii",
    "severity",
    "status",
    "token",
]

SEVERITIES = ("low", "medium", "high", "critical")
"""An advisory's severity, least to most."""


def fixed_ascii(size: int, what: str) -> Callable[[str], str]:
    """Exactly ``size`` printable ASCII characters (a TID, a MID)."""

    def parse(text: str) -> str:
        value = text.strip()
        if len(value) != size or not value.isascii() or not value.isprintable():
            raise ValueError(f"{what} must be {size} printable ASCII characters, not {text!r}")
        return value

    return parse


def token(max_len: int, what: str) -> Callable[[str], str]:
    """An identifier (serial, model code, firmware version) of at most ``max_len``."""
    return lambda text: parse_token(text, max_len=max_len, what=what)


def bounded_text(max_len: int) -> Callable[[str], str]:
    """Free text of at most ``max_len`` characters, stripped."""

    def parse(text: str) -> str:
        value = text.strip()
        if len(value) > max_len:
            raise ValueError(f"longer than {max_len} characters")
        return value

    return parse


def amount(text: str) -> str:
    """A non-negative decimal; its decimals are checked against the row's currency later."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative amount: {text!r}")
    return text.strip()


def status(text: str) -> str:
    """A terminal's :class:`~fleet.core.status.Status`, written loosely (``In Stock``)."""
    value = text.strip().lower().replace(" ", "_").replace("-", "_")
    if value not in Status.__members__.values():
        raise ValueError(f"unknown status {text!r} (want {', '.join(s.value for s in Status)})")
    return value


def severity(text: str) -> str:
    value = text.strip().lower()
    if value not in SEVERITIES:
        raise ValueError(f"unknown severity {text!r} (want {', '.join(SEVERITIES)})")
    return value


def count(text: str) -> int:
    """A whole number ≥ 0 (a fault count, a table version)."""
    return parse_int(text)


def rated(text: str) -> int:
    """A rated life: a whole number ≥ 1 (reader cycles, printer lines, battery cycles)."""
    return parse_int(text, low=1)
