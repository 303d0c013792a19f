"""The fee-table file (wire page §6) and the one fee function both sides use.

The file, big-endian, declared with ``construct`` (:data:`FEE_TABLE`)::

    magic "FEE1" | version u32 | effective u64 | currency u16 | count u16 |
    count x (card_type u8, mcc_lo u16, mcc_hi u16, rate_ppm u32, fixed u32,
             min_fee u32, max_fee u32) | crc32 u32 (zlib.crc32 of every byte before it)

:class:`FeeTable` and :class:`FeeRule` are plain frozen dataclasses; money is integer
minor units, rates integer parts per million, times timezone-aware datetimes: no float
anywhere.

>>> table = FeeTable(
...     version=7,
...     effective=datetime(2025, 1, 1, tzinfo=UTC),
...     currency=156,
...     rules=(
...         FeeRule(CardType.CREDIT, 5411, 5411, rate_ppm=6000, fixed=0, min_fee=10),
...         FeeRule(CardType.ANY, 0, 9999, rate_ppm=3800, max_fee=2000),
...     ),
... )
>>> raw = table.to_bytes()
>>> len(raw), raw[:4], FeeTable.from_bytes(raw) == table
(66, b'FEE1', True)
>>> compute_fee(table, 10_150, CardType.CREDIT, 5411)  # 60.9 -> 61
61
>>> compute_fee(table, 10_150, CardType.DEBIT, 5411)  # 38.57 -> 39
39

Every problem with the bytes is a :class:`~protocols.errors.FeeTableError` naming the
member (``'rules[1].mcc_hi'``) and its byte offset; construct's own errors never escape:

>>> FeeTable.from_bytes(raw[:48])
Traceback (most recent call last):
...
protocols.errors.FeeTableError: field rules[1].rate_ppm at byte 46: truncated: the table \
of 2 rules is 66 bytes, got 48; needs 4 bytes here, 2 left

**Format rules** (checked by :meth:`FeeTable.from_bytes`, which a terminal runs before it
accepts a committed table, and by the dataclasses, which raise
:class:`~protocols.errors.EncodeError`): ``version`` ≥ 1 (0 means "no table" in TLV tags
0x05/0x06); ``effective`` within 1970..9999; ``currency`` 1..999 (ISO 4217 numeric, it
must fit field 49, n3); **at least one rule** (a table with no rules would refuse every
sale with ``57``, which is never what a fleet means to roll out); per rule:
``card_type`` 0..4, ``mcc_lo`` ≤ ``mcc_hi`` ≤ 9999, ``rate_ppm`` ≤ 1 000 000 (100 %),
and ``min_fee`` ≤ ``max_fee`` when ``max_fee`` > 0.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime  # noqa: F401 - UTC: for the doctests
from typing import Any, ClassVar, Final, Self

import construct as cs

from protocols.errors import EncodeError, FeeError, FeeTableError, shown
from protocols.values import MAX_UNIX_SECONDS, CardType, unix_seconds, utc_datetime

__all__ = [
    "BLOCK_SIZE",
    "FEE_RULE",
    "FEE_TABLE",
    "FEE_TABLE_BODY",
    "MAGIC",
    "MAX_MCC",
    "MAX_RULES",
    "PPM",
    "FeeRule",
    "FeeTable",
    "NoFeeRuleError",
    "compute_fee",
    "match_rule",
]

MAGIC: Final = b"FEE1"
PPM: Final = 1_000_000
"""``rate_ppm`` of 100 %."""
MAX_MCC: Final = 9999
MAX_RULES: Final = 0xFFFF
"""Most rules a table can hold (``count`` is u16)."""
BLOCK_SIZE: Final = 900
"""Default and largest download block (field 62 of an 0800/360 carries ≤ 900 bytes)."""

# --- constructs --------------------------------------------------------------------------

FEE_RULE: Final[Any] = cs.Struct(
    "card_type" / cs.Int8ub,
    "mcc_lo" / cs.Int16ub,
    "mcc_hi" / cs.Int16ub,
    "rate_ppm" / cs.Int32ub,
    "fixed" / cs.Int32ub,
    "min_fee" / cs.Int32ub,
    "max_fee" / cs.Int32ub,
)
"""One rule: 21 bytes."""

FEE_TABLE_BODY: Final[Any] = cs.Struct(
    "magic" / cs.Const(MAGIC),
    "version" / cs.Int32ub,
    "effective" / cs.Int64ub,
    "currency" / cs.Int16ub,
    "count" / cs.Rebuild(cs.Int16ub, cs.len_(cs.this.rules)),
    "rules" / cs.Array(cs.this.count, FEE_RULE),
)
"""Everything the CRC covers."""

FEE_TABLE: Final[Any] = cs.Struct(
    "body" / cs.RawCopy(FEE_TABLE_BODY),
    "crc32" / cs.Checksum(cs.Int32ub, zlib.crc32, cs.this.body.data),
    cs.Terminated,
)
"""The whole file: body, CRC-32 of the body, nothing after."""

_FEE_TABLE_FAST: Final[Any] = cs.Struct(
    "body" / cs.RawCopy(FEE_TABLE_BODY.compile()),
    "crc32" / cs.Checksum(cs.Int32ub, zlib.crc32, cs.this.body.data),
    cs.Terminated,
)
"""FEE_TABLE with its body compiled (5x faster on big tables). Compiled construct skips
short-read checks, so :meth:`FeeTable.from_bytes` checks magic and size before using it."""

# Byte layout for error offsets, derived from the constructs above.
_HEADER: Final[tuple[tuple[str, int], ...]] = tuple(
    (sc.name, sc.sizeof()) for sc in FEE_TABLE_BODY.subcons if sc.name != "rules"
)
_RULE: Final[tuple[tuple[str, int], ...]] = tuple((sc.name, sc.sizeof()) for sc in FEE_RULE.subcons)
_HEADER_SIZE: Final[int] = sum(size for _, size in _HEADER)
_RULE_SIZE: Final[int] = FEE_RULE.sizeof()
_CRC_SIZE: Final = 4


def _offsets(layout: tuple[tuple[str, int], ...]) -> dict[str, int]:
    out, pos = {}, 0
    for name, size in layout:
        out[name] = pos
        pos += size
    return out


_HEADER_AT: Final = _offsets(_HEADER)
_RULE_AT: Final = _offsets(_RULE)
_UINT_BITS: Final = {"card_type": 8, "mcc_lo": 16, "mcc_hi": 16} | dict.fromkeys(
    ("rate_ppm", "fixed", "min_fee", "max_fee"), 32
)


def _table_size(count: int) -> int:
    return _HEADER_SIZE + count * _RULE_SIZE + _CRC_SIZE


def _member_at(pos: int, count: int) -> tuple[str, int, int]:
    """(member, its offset, its size) of the member holding byte ``pos``."""
    if pos < _HEADER_SIZE:
        layout, base, prefix = _HEADER, 0, ""
    elif pos < _HEADER_SIZE + count * _RULE_SIZE:
        index = (pos - _HEADER_SIZE) // _RULE_SIZE
        layout, base, prefix = _RULE, _HEADER_SIZE + index * _RULE_SIZE, f"rules[{index}]."
    else:
        return "crc32", _HEADER_SIZE + count * _RULE_SIZE, _CRC_SIZE
    start = base
    for name, size in layout:
        if pos < start + size:
            return prefix + name, start, size
        start += size
    raise AssertionError("unreachable")  # pragma: no cover


# --- checks shared by the dataclasses and the parser -------------------------------------


def _rule_problem(
    card_type: int,
    mcc_lo: int,
    mcc_hi: int,
    rate_ppm: int,
    min_fee: int,
    max_fee: int,
) -> tuple[str, str] | None:
    """(member, reason) of the first format problem of a rule of in-range integers."""
    if card_type > max(CardType):
        return "card_type", f"card type {card_type} is not 0..{int(max(CardType))}"
    if mcc_lo > MAX_MCC:
        return "mcc_lo", f"mcc_lo {mcc_lo} is not 0..{MAX_MCC}"
    if mcc_hi > MAX_MCC:
        return "mcc_hi", f"mcc_hi {mcc_hi} is not 0..{MAX_MCC}"
    if mcc_lo > mcc_hi:
        return "mcc_lo", f"mcc_lo {mcc_lo} > mcc_hi {mcc_hi}"
    if rate_ppm > PPM:
        return "rate_ppm", f"rate_ppm {rate_ppm} is over {PPM} (100 %)"
    if 0 < max_fee < min_fee:
        return "max_fee", f"max_fee {max_fee} < min_fee {min_fee}"
    return None


def _table_problem(
    version: int, effective: int, currency: int, count: int
) -> tuple[str, str] | None:
    if version == 0:
        return "version", "version 0 is reserved (it means 'no table')"
    if effective > MAX_UNIX_SECONDS:
        return "effective", f"effective {effective} Unix seconds is after year 9999"
    if not 1 <= currency <= 999:
        return "currency", f"currency {currency} is not an ISO 4217 numeric code 1..999"
    if count == 0:
        return "count", "the table has no rules (every sale would be refused)"
    return None


def _check_uint(value: object, bits: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"must be an int, not {type(value).__name__}", field=field)
    if not 0 <= value < 1 << bits:
        raise EncodeError(f"{shown(value)} does not fit u{bits}", field=field)
    return value


# --- the dataclasses ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeeRule:
    """One rule: which sales it matches (card type, MCC range) and how it prices them.

    ``card_type`` 0 (:attr:`CardType.ANY`) matches every card; MCC bounds are inclusive.
    Money is in minor units; ``max_fee`` 0 means no cap. Invalid values raise EncodeError.

    >>> rule = FeeRule(CardType.ANY, 0, 9999, rate_ppm=6000, min_fee=50, max_fee=2000)
    >>> rule.fee(10_150), rule.fee(1_000), rule.fee(1_000_000), rule.fee(20)
    (61, 50, 2000, 20)
    >>> FeeRule(CardType.DEBIT, 5000, 4000, rate_ppm=6000)
    Traceback (most recent call last):
    ...
    protocols.errors.EncodeError: field mcc_lo: mcc_lo 5000 > mcc_hi 4000
    """

    card_type: CardType
    mcc_lo: int
    mcc_hi: int
    rate_ppm: int
    fixed: int = 0
    min_fee: int = 0
    max_fee: int = 0

    def __post_init__(self) -> None:
        for name, bits in _UINT_BITS.items():
            _check_uint(getattr(self, name), bits, name)
        problem = _rule_problem(
            self.card_type, self.mcc_lo, self.mcc_hi, self.rate_ppm, self.min_fee, self.max_fee
        )
        if problem is not None:
            raise EncodeError(problem[1], field=problem[0])
        object.__setattr__(self, "card_type", CardType(self.card_type))

    def matches(self, card_type: int, mcc: int) -> bool:
        """True if this rule applies to a sale with ``card_type`` and ``mcc``."""
        return self.card_type in (CardType.ANY, card_type) and self.mcc_lo <= mcc <= self.mcc_hi

    def fee(self, amount: int) -> int:
        """The fee of a sale of ``amount`` minor units under this rule (§6).

        ``amount × rate_ppm / 1 000 000`` rounded half up, plus ``fixed``, raised to
        ``min_fee``, lowered to ``max_fee`` if ``max_fee`` > 0, never above ``amount``.
        Integer arithmetic only.
        """
        _check_amount(amount)
        fee = (amount * self.rate_ppm + PPM // 2) // PPM + self.fixed
        fee = max(fee, self.min_fee)
        if self.max_fee > 0:
            fee = min(fee, self.max_fee)
        return min(fee, amount)


@dataclass(frozen=True, slots=True)
class FeeTable:
    """A fee table: version, effective time (UTC), currency and rules in match order.

    ``effective`` must be a timezone-aware datetime on a whole second (stored in UTC);
    ``rules`` is a tuple (a list is accepted and turned into one). See the module's
    format rules; violations raise EncodeError naming the member.
    """

    version: int
    effective: datetime
    currency: int
    rules: tuple[FeeRule, ...]
    _raw: bytes = field(default=b"", init=False, repr=False, compare=False)
    """The file bytes, built once (the table is immutable)."""

    def __post_init__(self) -> None:
        _check_uint(self.version, 32, "version")
        seconds = unix_seconds(self.effective, field="effective")
        _check_uint(self.currency, 16, "currency")
        if not isinstance(self.rules, tuple | list):
            raise EncodeError(
                f"rules must be a tuple of FeeRule, not {type(self.rules).__name__}", field="rules"
            )
        rules = tuple(self.rules)
        for i, rule in enumerate(rules):
            if not isinstance(rule, FeeRule):
                raise EncodeError(f"not a FeeRule: {rule!r}", field=f"rules[{i}]")
        if len(rules) > MAX_RULES:
            raise EncodeError(f"{len(rules)} rules, at most {MAX_RULES} fit", field="count")
        problem = _table_problem(self.version, seconds, self.currency, len(rules))
        if problem is not None:
            raise EncodeError(problem[1], field=problem[0])
        object.__setattr__(self, "effective", utc_datetime(seconds))
        object.__setattr__(self, "rules", rules)

    def to_bytes(self) -> bytes:
        """The file bytes (§6), CRC included (built once, then cached)."""
        if self._raw:
            return self._raw
        obj = {
            "body": {
                "value": {
                    "version": self.version,
                    "effective": unix_seconds(self.effective),
                    "currency": self.currency,
                    "rules": [
                        {
                            "card_type": int(r.card_type),
                            "mcc_lo": r.mcc_lo,
                            "mcc_hi": r.mcc_hi,
                            "rate_ppm": r.rate_ppm,
                            "fixed": r.fixed,
                            "min_fee": r.min_fee,
                            "max_fee": r.max_fee,
                        }
                        for r in self.rules
                    ],
                }
            }
        }
        try:
            raw: bytes = FEE_TABLE.build(obj)
        except cs.ConstructError as exc:  # pragma: no cover - the dataclasses validated it
            raise EncodeError(f"cannot build the fee table: {exc}") from exc
        object.__setattr__(self, "_raw", raw)
        return raw

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse and check a fee-table file; FeeTableError (member + offset) on any fault.

        Checked in order: size (truncation), magic, CRC-32, trailing bytes, then the
        format rules of the module docstring.

        >>> FeeTable.from_bytes(b"FEE2" + bytes(30))
        Traceback (most recent call last):
        ...
        protocols.errors.FeeTableError: field magic at byte 0: bad magic b'FEE2', expected b'FEE1'
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"a fee table is bytes, not {type(data).__name__}")
        raw = bytes(data)
        if len(raw) >= len(MAGIC) and raw[: len(MAGIC)] != MAGIC:
            raise _translate(cs.ConstError(), raw)
        claimed = int.from_bytes(raw[18:20], "big") if len(raw) >= _HEADER_SIZE else 0
        if len(raw) < _table_size(claimed):
            raise _translate(cs.StreamError("truncated"), raw)
        try:
            parsed = _FEE_TABLE_FAST.parse(raw)
        except cs.ConstructError as exc:
            raise _translate(exc, raw) from None
        body = parsed.body.value
        count: int = body.count
        problem = _table_problem(body.version, body.effective, body.currency, count)
        if problem is not None:
            member, reason = problem
            raise FeeTableError(reason, field=member, offset=_HEADER_AT[member])
        rules = []
        for i, r in enumerate(body.rules):
            problem = _rule_problem(
                r.card_type, r.mcc_lo, r.mcc_hi, r.rate_ppm, r.min_fee, r.max_fee
            )
            if problem is not None:
                member, reason = problem
                at = _HEADER_SIZE + i * _RULE_SIZE + _RULE_AT[member]
                raise FeeTableError(reason, field=f"rules[{i}].{member}", offset=at)
            rules.append(
                FeeRule(
                    card_type=CardType(r.card_type),
                    mcc_lo=r.mcc_lo,
                    mcc_hi=r.mcc_hi,
                    rate_ppm=r.rate_ppm,
                    fixed=r.fixed,
                    min_fee=r.min_fee,
                    max_fee=r.max_fee,
                )
            )
        table = cls(
            version=body.version,
            effective=utc_datetime(body.effective),
            currency=body.currency,
            rules=tuple(rules),
        )
        object.__setattr__(table, "_raw", raw)
        return table

    def digest(self) -> bytes:
        """SHA-256 of :meth:`to_bytes`: field 62 of the 361 commit (32 bytes)."""
        return hashlib.sha256(self.to_bytes()).digest()

    def blocks(self, size: int = BLOCK_SIZE) -> list[bytes]:
        """:meth:`to_bytes` cut into download blocks of ``size`` bytes (the last may be shorter).

        >>> table = FeeTable(1, datetime(2025, 1, 1, tzinfo=UTC), 156,
        ...                  [FeeRule(CardType.ANY, 0, 9999, rate_ppm=6000)] * 2)
        >>> [len(b) for b in table.blocks(32)]
        [32, 32, 2]
        """
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"block size must be an int, not {type(size).__name__}")
        if not 1 <= size <= BLOCK_SIZE:
            raise ValueError(f"block size {size} is not 1..{BLOCK_SIZE}")
        raw = self.to_bytes()
        return [raw[i : i + size] for i in range(0, len(raw), size)]


def _translate(exc: Exception, raw: bytes) -> FeeTableError:
    """The FeeTableError for a construct error raised while parsing ``raw``."""
    count = int.from_bytes(raw[18:20], "big") if len(raw) >= _HEADER_SIZE else 0
    expected = _table_size(count)
    if isinstance(exc, cs.ConstError):
        return FeeTableError(f"bad magic {raw[:4]!r}, expected {MAGIC!r}", field="magic", offset=0)
    if isinstance(exc, cs.ChecksumError):
        crc_at = expected - _CRC_SIZE
        got = int.from_bytes(raw[crc_at:expected], "big")
        want = zlib.crc32(raw[:crc_at])
        return FeeTableError(
            f"CRC-32 mismatch: expected 0x{want:08x} (of bytes 0..{crc_at - 1}), got 0x{got:08x}",
            field="crc32",
            offset=crc_at,
        )
    if isinstance(exc, cs.TerminatedError):
        return FeeTableError(
            f"{len(raw) - expected} trailing bytes after the table of {count} rules "
            f"({expected} bytes)",
            field="end",
            offset=expected,
        )
    if isinstance(exc, cs.StreamError):
        member, start, size = _member_at(len(raw), count)
        if len(raw) < _HEADER_SIZE:
            whole = f"got {len(raw)} bytes, the header alone is {_HEADER_SIZE}"
        else:
            whole = f"the table of {count} rules is {expected} bytes, got {len(raw)}"
        return FeeTableError(
            f"truncated: {whole}; needs {size} bytes here, {len(raw) - start} left",
            field=member,
            offset=start,
        )
    return FeeTableError(f"malformed fee table: {exc}")  # pragma: no cover - defensive


# --- the fee function ----------------------------------------------------------------------


class NoFeeRuleError(FeeError):
    """No rule of the table matches the sale: the terminal answers response code 57."""

    code: ClassVar[str] = "57"


def _check_amount(amount: object) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int of minor units, not {type(amount).__name__}")
    if amount < 0:
        raise ValueError(f"amount {amount} is negative")


def _check_sale(card_type: object, mcc: object) -> None:
    if isinstance(card_type, bool) or not isinstance(card_type, int):
        raise TypeError(f"card type must be an int, not {type(card_type).__name__}")
    if not CardType.DEBIT <= card_type <= CardType.QR_WALLET:
        raise ValueError(f"card type {card_type} of a sale is not 1..4")
    if isinstance(mcc, bool) or not isinstance(mcc, int):
        raise TypeError(f"MCC must be an int, not {type(mcc).__name__}")
    if not 0 <= mcc <= MAX_MCC:
        raise ValueError(f"MCC {mcc} is not 0..{MAX_MCC}")


def match_rule(table: FeeTable, card_type: int, mcc: int) -> FeeRule | None:
    """The first rule of ``table``, in order, that matches the sale; None if none does.

    ``card_type`` is the sale's (1..4, never 0), ``mcc`` 0..9999; TypeError/ValueError
    otherwise.

    >>> table = FeeTable(1, datetime(2025, 1, 1, tzinfo=UTC), 156, (
    ...     FeeRule(CardType.CREDIT, 0, 9999, rate_ppm=6000),
    ...     FeeRule(CardType.ANY, 5000, 5999, rate_ppm=3800),
    ... ))
    >>> match_rule(table, CardType.QR_WALLET, 5411) == table.rules[1]
    True
    >>> match_rule(table, CardType.QR_WALLET, 7011) is None
    True
    """
    _check_sale(card_type, mcc)
    return next((r for r in table.rules if r.matches(card_type, mcc)), None)


def compute_fee(table: FeeTable, amount: int, card_type: int, mcc: int) -> int:
    """The fee of a sale (§6): :meth:`FeeRule.fee` of :func:`match_rule`.

    ``amount`` is a non-negative int of minor units (TypeError for a float or a bool,
    ValueError if negative). The result is always ``0 <= fee <= amount``. No matching
    rule raises :class:`NoFeeRuleError` (a FeeError with ``code == "57"``).

    >>> table = FeeTable(1, datetime(2025, 1, 1, tzinfo=UTC), 156,
    ...                  (FeeRule(CardType.DEBIT, 0, 9999, rate_ppm=5000),))
    >>> compute_fee(table, 100, CardType.DEBIT, 5411)  # 0.5 rounds up
    1
    >>> compute_fee(table, 100, CardType.CREDIT, 5411)
    Traceback (most recent call last):
    ...
    protocols.feetable.NoFeeRuleError: no fee rule matches card type CREDIT (2), MCC 5411
    """
    _check_amount(amount)
    rule = match_rule(table, card_type, mcc)
    if rule is None:
        name = CardType(card_type).name
        raise NoFeeRuleError(
            f"no fee rule matches card type {name} ({int(card_type)}), MCC {mcc:04d}"
        )
    return rule.fee(amount)
