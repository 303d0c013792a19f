"""Fee tables as people write them (TOML) → the wire's :class:`~protocols.feetable.FeeTable`.
Pure: text in, tables and differences out.

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
    fixed = "0.10"               # money: decimal strings in the currency's units
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
fleet.fees.tablefile.FeeFileError: rules[0].card: unknown card type 'gold' (want any, debit, ...)
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from protocols.errors import EncodeError
from protocols.feetable import MAX_MCC, PPM, FeeRule, FeeTable, NoFeeRuleError, compute_fee
from protocols.values import CardType

__all__ = [
    "CURRENCIES",
    "BasketItem",
    "FeeFileError",
    "Group",
    "ParsedTable",
    "basket_fees",
    "card_name",
    "parse_basket",
    "parse_fee_toml",
    "parse_group",
    "rule_diff",
]

CURRENCIES: dict[str, tuple[int, int]] = {
    # alpha: (ISO 4217 numeric, minor-unit exponent)
    "CNY": (156, 2),
    "EUR": (978, 2),
    "USD": (840, 2),
    "GBP": (826, 2),
    "HKD": (344, 2),
    "SGD": (702, 2),
    "JPY": (392, 0),
    "KRW": (410, 0),
    "AUD": (36, 2),
    "CAD": (124, 2),
    "CHF": (756, 2),
    "INR": (356, 2),
    "MYR": (458, 2),
    "THB": (764, 2),
    "TWD": (901, 2),
    "MOP": (446, 2),
    "KWD": (414, 3),
    "BHD": (48, 3),
}
_BY_NUMBER = {number: alpha for alpha, (number, _) in CURRENCIES.items()}
_CARDS = {c.name.lower(): c for c in CardType}
_TOP_KEYS = {"name", "currency", "effective", "applies", "rules", "description"}
_RULE_KEYS = {"card", "mcc", "rate", "fixed", "min", "max", "note"}
_APPLIES_KEYS = {"mcc", "regions", "tags"}


class FeeFileError(ValueError):
    """A fee-table file that can't be used; the message starts with the rule and key."""


def card_name(card: int) -> str:
    return CardType(card).name.lower()


def currency_alpha(number: int) -> str:
    return _BY_NUMBER.get(number, f"{number:03d}")


def exponent_of(currency: int | str) -> int:
    alpha = currency if isinstance(currency, str) else currency_alpha(currency)
    return CURRENCIES.get(alpha, (0, 2))[1]


def _money(text: Any, exponent: int, where: str) -> int:
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise FeeFileError(f'{where}: write money as a string, e.g. "0.50" (no float)')
    try:
        amount = Decimal(str(text).strip())
    except InvalidOperation:
        raise FeeFileError(f"{where}: not an amount: {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise FeeFileError(f"{where}: not a non-negative amount: {text!r}")
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise FeeFileError(f"{where}: {text} has more than {exponent} decimals")
    return int(minor)


def parse_rate(text: Any, where: str = "rate") -> int:
    """``"0.60%"`` → 6000 ppm, exactly (finer than 0.0001 % is refused).

    >>> parse_rate("0.60%"), parse_rate("2%"), parse_rate("0.0125%")
    (6000, 20000, 125)
    """
    if not isinstance(text, str) or not text.strip().endswith("%"):
        raise FeeFileError(f'{where}: write a rate as a percent string, e.g. "0.60%"')
    try:
        percent = Decimal(text.strip()[:-1].strip())
    except InvalidOperation:
        raise FeeFileError(f"{where}: not a percentage: {text!r}") from None
    ppm = percent * (PPM // 100)
    if not percent.is_finite() or ppm != ppm.to_integral_value():
        raise FeeFileError(f"{where}: {text} is finer than 0.0001%")
    if not 0 <= ppm <= PPM:
        raise FeeFileError(f"{where}: {text} is not between 0% and 100%")
    return int(ppm)


def parse_mcc_ranges(value: Any, where: str) -> list[tuple[int, int]]:
    """``"5411"``, ``"5811-5814"``, ``5411`` or a list of those → inclusive ranges.

    >>> parse_mcc_ranges(["5411", "5811-5814", 7011], "mcc")
    [(5411, 5411), (5811, 5814), (7011, 7011)]
    """
    items = value if isinstance(value, list) else [value]
    if not items:
        raise FeeFileError(f"{where}: an empty list matches nothing")
    ranges = []
    for item in items:
        text = (
            str(item).strip() if isinstance(item, str | int) and not isinstance(item, bool) else ""
        )
        match = re.fullmatch(r"(\d{1,4})(?:\s*-\s*(\d{1,4}))?", text)
        if not match:
            raise FeeFileError(f'{where}: not an MCC or range: {item!r} (e.g. "5411", "5811-5814")')
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if lo > hi or hi > MAX_MCC:
            raise FeeFileError(f"{where}: {text} is not a range within 0000-{MAX_MCC}")
        ranges.append((lo, hi))
    return ranges


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) and i.strip() for i in items) or not items:
        raise FeeFileError(f"{where}: want a list of names")
    return tuple(i.strip() for i in items)


@dataclass(frozen=True)
class Group:
    """Which merchants a table applies to: all, or those matching every given criterion."""

    mcc: tuple[tuple[int, int], ...] = ()
    regions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        return not (self.mcc or self.regions or self.tags)

    def includes(self, mcc: int, region: str | None, tags: Iterable[str]) -> bool:
        if self.mcc and not any(lo <= mcc <= hi for lo, hi in self.mcc):
            return False
        if self.regions and region not in self.regions:
            return False
        return not self.tags or bool(set(self.tags) & set(tags))

    def as_dict(self) -> dict[str, Any]:
        return {
            "mcc": [list(r) for r in self.mcc],
            "regions": list(self.regions),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Group:
        return cls(
            tuple((int(lo), int(hi)) for lo, hi in doc.get("mcc", [])),
            tuple(doc.get("regions", [])),
            tuple(doc.get("tags", [])),
        )

    def describe(self) -> str:
        if self.everyone:
            return "all merchants"
        parts = []
        if self.mcc:
            parts.append(
                "MCC "
                + ", ".join(
                    f"{lo:04d}" if lo == hi else f"{lo:04d}-{hi:04d}" for lo, hi in self.mcc
                )
            )
        if self.regions:
            parts.append("region " + ", ".join(self.regions))
        if self.tags:
            parts.append("tag " + ", ".join(self.tags))
        return "; ".join(parts)


def parse_group(text: str) -> Group:
    """``all``, ``mcc=5411,5811-5814``, ``region=east``, ``tag=vip``; ``;`` joins criteria.

    >>> parse_group("mcc=5411;region=east").describe()
    'MCC 5411; region east'
    """
    if text.strip() in ("", "all"):
        return Group()
    mcc: list[tuple[int, int]] = []
    regions: list[str] = []
    tags: list[str] = []
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not sep or not values:
            raise FeeFileError(f"group: {part!r} (want all, mcc=…, region=…, tag=…)")
        if key == "mcc":
            mcc += parse_mcc_ranges(values, "group mcc")
        elif key in ("region", "regions"):
            regions += values
        elif key in ("tag", "tags"):
            tags += values
        else:
            raise FeeFileError(f"group: unknown criterion {key!r} (want mcc, region, tag)")
    return Group(tuple(mcc), tuple(regions), tuple(tags))


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
        return currency_alpha(self.currency)

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
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FeeFileError(f"{prefix}not TOML: {exc}") from None
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
    alpha = doc.get("currency")
    if not isinstance(alpha, str) or alpha.upper() not in CURRENCIES:
        raise FeeFileError(f"currency: want one of {', '.join(CURRENCIES)}, not {alpha!r}")
    number, exponent = CURRENCIES[alpha.upper()]
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
        fixed = _money(rule.get("fixed", "0"), exponent, f"{where}.fixed")
        low = _money(rule.get("min", "0"), exponent, f"{where}.min")
        high = _money(rule.get("max", "0"), exponent, f"{where}.max")
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
    exponent = exponent_of(currency)
    basket = []
    for i, (amount, card) in enumerate(items):
        if card not in _CARDS or card == "any":
            raise FeeFileError(f"basket[{i}].card: {card!r}")
        basket.append(BasketItem(_money(amount, exponent, f"basket[{i}].amount"), _CARDS[card]))
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


def describe_rule(rule: FeeRule | None, table: FeeTable | None) -> str:
    if rule is None or table is None:
        return ""
    exponent = exponent_of(table.currency)
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
        text += f" + {format_minor(rule.fixed, exponent)}"
    if rule.min_fee:
        text += f", min {format_minor(rule.min_fee, exponent)}"
    if rule.max_fee:
        text += f", max {format_minor(rule.max_fee, exponent)}"
    return text


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


def format_minor(minor: int, exponent: int) -> str:
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
