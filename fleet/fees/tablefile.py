"""Fee tables as people write them (TOML) → the wire's :class:`~protocols.feetable.FeeTable`.
Pure: text in, a checked table out.

A table file::

    name = "Grocery and restaurants 2027"
    currency = "CNY"
    effective = 2027-01-01T00:00:00+08:00   # a time zone is required

    [applies]                    # optional; no [applies] = every merchant
    mcc = ["5411", "5811-5814"]  # any of these MCCs (lists and ranges) …
    regions = ["east"]           # … and any of these regions …
    tags = ["vip"]               # … and any of these tags

    [[rules]]                    # first match wins, as on the terminal
    card = "credit"              # debit, credit, international, qr_wallet or any
    mcc = ["5411", "5811-5814"]  # optional: every MCC
    rate = "0.60%"
    fixed = "0.10"               # money: decimal strings in the currency's units, with
                                 # its own decimals (none for JPY or VND, 3 for KWD)
    min = "0.50"
    max = "20.00"

Every problem is a :class:`FeeFileError` naming the rule and key (``rules[2].rate``):

>>> t = parse_fee_toml('currency = "CNY"\\neffective = 2027-01-01T00:00:00+08:00\\n'
...                    '[[rules]]\\ncard = "any"\\nrate = "0.38%"\\nmax = "20.00"')
>>> t.table(7).rules[0].rate_ppm, t.table(7).rules[0].max_fee, t.table(7).currency
(3800, 2000, 156)
>>> parse_fee_toml('currency = "CNY"\\neffective = 2027-01-01T00:00:00+08:00\\n'
...                '[[rules]]\\ncard = "gold"\\nrate = "0.38%"')  # doctest: +ELLIPSIS
Traceback (most recent call last):
fleet.fees.errors.FeeFileError: rules[0].card: unknown card type 'gold' (want any, debit, ...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fleet.core.files import DocumentError, load_toml
from fleet.core.money import (
    MoneyError,
    alpha_code,
    numeric_code,
    parse_currency_code,
    parse_decimal,
    parse_minor,
)
from fleet.fees.describe import describe_rule
from fleet.fees.errors import FeeFileError
from fleet.fees.group import Group, parse_mcc_ranges
from protocols.errors import EncodeError
from protocols.feetable import MAX_MCC, PPM, FeeRule, FeeTable
from protocols.values import CardType

__all__ = [
    "FeeFileError",
    "Group",
    "ParsedTable",
    "parse_fee_toml",
    "parse_rate",
    "sha256",
]

_CARDS = {c.name.lower(): c for c in CardType}
_TOP_KEYS = {"name", "currency", "effective", "applies", "rules", "description"}
_RULE_KEYS = {"card", "mcc", "rate", "fixed", "min", "max", "note"}
_APPLIES_KEYS = {"mcc", "regions", "tags"}


def _money(text: Any, currency: int, where: str) -> int:
    try:
        return parse_minor(text, currency)
    except MoneyError as exc:
        raise FeeFileError(exc.message, where=where) from None


def parse_rate(text: Any, where: str = "rate") -> int:
    """``"0.60%"`` → 6000 ppm, exactly (finer than 0.0001 % is refused).

    >>> parse_rate("0.60%"), parse_rate("2%"), parse_rate("0.0125%")
    (6000, 20000, 125)
    """
    if not isinstance(text, str) or not text.strip().endswith("%"):
        raise FeeFileError(f'{where}: write a rate as a percent string, e.g. "0.60%"')
    try:
        percent = parse_decimal(text.strip()[:-1].strip())
    except MoneyError:
        raise FeeFileError(f"{where}: not a percentage: {text!r}") from None
    ppm = percent * (PPM // 100)
    if ppm != ppm.to_integral_value():
        raise FeeFileError(f"{where}: {text} is finer than 0.0001%")
    if not 0 <= ppm <= PPM:
        raise FeeFileError(f"{where}: {text} is not between 0% and 100%")
    return int(ppm)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) and i.strip() for i in items) or not items:
        raise FeeFileError(f"{where}: want a list of names")
    return tuple(i.strip() for i in items)


@dataclass(frozen=True)
class ParsedTable:
    """A checked fee-table file: everything but the version (given at publication)."""

    name: str
    currency: int
    effective: datetime
    rules: tuple[FeeRule, ...]
    sources: tuple[int, ...]
    """For each wire rule, the index of the ``[[rules]]`` entry it came from."""
    group: Group = field(default_factory=Group)
    description: str = ""
    """Why the fees change, in the words the merchant notices quote."""

    def table(self, version: int) -> FeeTable:
        return FeeTable(
            version=version, effective=self.effective, currency=self.currency, rules=self.rules
        )

    @property
    def currency_alpha(self) -> str:
        return alpha_code(self.currency)

    def shadowed(self) -> list[str]:
        """Warnings for rules that can never match: an earlier rule takes all their sales."""
        warnings = []
        for j, later in enumerate(self.rules):
            for i, earlier in enumerate(self.rules[:j]):
                card_ok = earlier.card_type in (CardType.ANY, later.card_type)
                if card_ok and earlier.mcc_lo <= later.mcc_lo and later.mcc_hi <= earlier.mcc_hi:
                    warnings.append(
                        f"rules[{self.sources[j]}] ({describe_rule(later, self.table(1))}) never "
                        f"applies: rules[{self.sources[i]}] matches those sales first"
                    )
                    break
        return warnings


def parse_fee_toml(text: str, source: str = "") -> ParsedTable:
    """Check a fee-table file and build its rules (see the module's example)."""
    prefix = f"{source}: " if source else ""
    try:
        doc = load_toml(text)
    except DocumentError as exc:
        raise FeeFileError(f"{prefix}{exc.message}") from None
    try:
        return _parse(doc)
    except FeeFileError as exc:
        raise FeeFileError(f"{prefix}{exc}") from None


def _parse(doc: dict[str, Any]) -> ParsedTable:
    for key in doc:
        if key not in _TOP_KEYS:
            raise FeeFileError(f"{key}: unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    name = doc.get("name", "")
    if not isinstance(name, str):
        raise FeeFileError("name: want a string")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise FeeFileError("description: want a string")
    try:
        number = numeric_code(parse_currency_code(str(doc.get("currency", ""))))
    except MoneyError:
        raise FeeFileError(
            f"currency: want an ISO 4217 code (e.g. CNY, EUR, JPY), not {doc.get('currency')!r}"
        ) from None
    effective = doc.get("effective")
    if isinstance(effective, date) and not isinstance(effective, datetime):
        raise FeeFileError("effective: give a time and a zone, e.g. 2027-01-01T00:00:00+08:00")
    if not isinstance(effective, datetime):
        raise FeeFileError("effective: required, e.g. 2027-01-01T00:00:00+08:00")
    if effective.tzinfo is None:
        raise FeeFileError(f"effective: {effective.isoformat()} has no time zone (add +08:00 or Z)")
    if effective.microsecond:
        raise FeeFileError("effective: whole seconds only")
    group = Group()
    applies = doc.get("applies")
    if applies is not None:
        if not isinstance(applies, dict):
            raise FeeFileError("applies: want a table")
        for key in applies:
            if key not in _APPLIES_KEYS:
                raise FeeFileError(f"applies.{key}: unknown key (known: mcc, regions, tags)")
        group = Group(
            tuple(parse_mcc_ranges(applies["mcc"], "applies.mcc")) if "mcc" in applies else (),
            _strings(applies["regions"], "applies.regions") if "regions" in applies else (),
            _strings(applies["tags"], "applies.tags") if "tags" in applies else (),
        )
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise FeeFileError("rules: at least one [[rules]] entry is required")
    rules: list[FeeRule] = []
    sources: list[int] = []
    for i, rule in enumerate(raw_rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise FeeFileError(f"{where}: want a table")
        for key in rule:
            if key not in _RULE_KEYS:
                raise FeeFileError(
                    f"{where}.{key}: unknown key (known: {', '.join(sorted(_RULE_KEYS))})"
                )
        card = str(rule.get("card", "any")).strip().lower()
        if card not in _CARDS:
            raise FeeFileError(
                f"{where}.card: unknown card type {card!r} (want {', '.join(_CARDS)})"
            )
        if "rate" not in rule:
            raise FeeFileError(f'{where}.rate: required, e.g. "0.60%"')
        rate = parse_rate(rule["rate"], f"{where}.rate")
        fixed = _money(rule.get("fixed", "0"), number, f"{where}.fixed")
        low = _money(rule.get("min", "0"), number, f"{where}.min")
        high = _money(rule.get("max", "0"), number, f"{where}.max")
        if high and low > high:
            raise FeeFileError(f"{where}.min: {rule.get('min')} is above max {rule.get('max')}")
        ranges = parse_mcc_ranges(rule["mcc"], f"{where}.mcc") if "mcc" in rule else [(0, MAX_MCC)]
        for lo, hi in ranges:
            try:
                rules.append(
                    FeeRule(
                        _CARDS[card], lo, hi, rate_ppm=rate, fixed=fixed, min_fee=low, max_fee=high
                    )
                )
            except EncodeError as exc:
                raise FeeFileError(f"{where}.{exc.field or 'rule'}: {exc.reason}") from None
            sources.append(i)
    try:
        FeeTable(version=1, effective=effective, currency=number, rules=tuple(rules))
    except EncodeError as exc:
        raise FeeFileError(f"{exc.field or 'table'}: {exc.reason}") from None
    return ParsedTable(
        name, number, effective, tuple(rules), tuple(sources), group, description.strip()
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
