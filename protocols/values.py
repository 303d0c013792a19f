"""Values the wire carries that the fee table, the TLV list and the fleet all name.

Card types (TLV tag 0x01 of a sale, ``card_type`` of a fee rule), terminal capabilities
(tag 0x08), the wire's time: whole Unix seconds, u64, UTC (tag 0x0A, the fee table's
``effective``), and what a terminal's serial may be (tag 0x03; the fleet's inventory and
``possim`` both check serials with :func:`check_serial`, and both name files and folders
after them). Pure, no I/O; imports nothing of ours but the errors.

>>> CardType.CREDIT.name, int(Capability.CHIP | Capability.CONTACTLESS)
('CREDIT', 3)
>>> utc_datetime(unix_seconds(datetime(2027, 1, 1, 8, tzinfo=UTC)))
datetime.datetime(2027, 1, 1, 8, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import IntEnum, IntFlag
from typing import Final

from protocols.errors import EncodeError

__all__ = [
    "MAX_AMOUNT",
    "MAX_SERIAL",
    "MAX_UNIX_SECONDS",
    "Capability",
    "CardType",
    "check_amount",
    "check_serial",
    "check_tid",
    "unix_seconds",
    "utc_datetime",
]

MAX_UNIX_SECONDS: Final = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a :class:`~datetime.datetime` can hold."""

MAX_AMOUNT: Final = 999_999_999_999
"""The largest amount in minor units: field 4 is 12 digits."""
TID_LENGTH: Final = 8
"""Field 41: the TID is 8 printable ASCII characters."""

MAX_SERIAL: Final = 40
"""The longest serial, in characters."""
_SERIAL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)


class CardType(IntEnum):
    """Card types: tag 0x01 of a sale (1..4) and ``card_type`` of a fee rule (0..4)."""

    ANY = 0
    """Fee rules only: matches every card type. Never the card type of a sale."""
    DEBIT = 1
    CREDIT = 2
    INTERNATIONAL = 3
    QR_WALLET = 4


class Capability(IntFlag):
    """Tag 0x08, u16. Undefined bits are kept as they are (forward compatible).

    >>> Capability(0b10011)
    <Capability.CHIP|CONTACTLESS|PIN_PAD: 19>
    """

    CHIP = 1 << 0
    CONTACTLESS = 1 << 1
    MAGSTRIPE = 1 << 2
    QR = 1 << 3
    PIN_PAD = 1 << 4


def unix_seconds(when: datetime, *, field: int | str | None = None) -> int:
    """Whole Unix seconds of a timezone-aware datetime; EncodeError otherwise.

    Naive datetimes, non-datetimes (a float timestamp...), fractions of a second and
    times before 1970 are refused: the wire carries whole seconds, u64, UTC.

    >>> unix_seconds(datetime(2025, 1, 1, tzinfo=UTC))
    1735689600
    >>> unix_seconds(datetime(2025, 1, 1), field="effective")
    Traceback (most recent call last):
    ...
    protocols.errors.EncodeError: field effective: naive datetime 2025-01-01 00:00:00: \
give a timezone
    """
    if not isinstance(when, datetime):
        raise EncodeError(
            f"expected a timezone-aware datetime, not {type(when).__name__}", field=field
        )
    if when.tzinfo is None or when.utcoffset() is None:
        raise EncodeError(f"naive datetime {when}: give a timezone", field=field)
    if when.microsecond:
        raise EncodeError(f"{when.isoformat()} is not a whole second", field=field)
    seconds = (when - _EPOCH) // _SECOND
    if seconds < 0:
        raise EncodeError(f"{when.isoformat()} is before 1970", field=field)
    return seconds


def utc_datetime(seconds: int) -> datetime:
    """The UTC datetime of Unix ``seconds`` (0..MAX_UNIX_SECONDS); ValueError otherwise.

    >>> utc_datetime(1735689600)
    datetime.datetime(2025, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if not 0 <= seconds <= MAX_UNIX_SECONDS:
        raise ValueError(f"{seconds} Unix seconds is outside 1970..9999")
    return _EPOCH + seconds * _SECOND


def check_serial(text: str) -> str:
    """``text`` if it is a terminal serial: 1 to 40 ASCII letters, digits, ``.``, ``_`` or
    ``-``, starting with a letter or digit — so never a path (``/``, ``..``) nor anything a
    shell or a screen would read differently. ``ValueError`` says why not.

    >>> check_serial("PS00000001")
    'PS00000001'
    >>> check_serial("../../x")
    Traceback (most recent call last):
    ValueError: not a valid serial: '../../x' (letters, digits, '.', '_', '-'; a letter or \
digit first)
    """
    if not isinstance(text, str) or not _SERIAL.fullmatch(text) or not text.isascii():
        raise ValueError(
            f"not a valid serial: {text!r} (letters, digits, '.', '_', '-'; a letter or digit "
            "first)"
        )
    if len(text) > MAX_SERIAL:
        raise ValueError(f"serial {text!r} is longer than {MAX_SERIAL} characters")
    return text


def check_tid(text: str) -> str:
    """``text`` if it is a TID (field 41: 8 printable ASCII characters); ``ValueError``
    says why not.

    >>> check_tid("TERM0001")
    'TERM0001'
    >>> check_tid("WRONG")
    Traceback (most recent call last):
    ValueError: tid 'WRONG' must be 8 printable ASCII characters
    """
    if (
        not isinstance(text, str)
        or len(text) != TID_LENGTH
        or not text.isascii()
        or not text.isprintable()
    ):
        raise ValueError(f"tid {text!r} must be {TID_LENGTH} printable ASCII characters")
    return text


def check_amount(minor: int) -> int:
    """``minor`` if it is an amount a sale can carry (field 4: 0..999,999,999,999 minor
    units); ``ValueError`` says why not.

    >>> check_amount(10000)
    10000
    >>> check_amount(10**12)
    Traceback (most recent call last):
    ValueError: amount 1000000000000 (minor units) is not 0..999999999999
    """
    if isinstance(minor, bool) or not isinstance(minor, int) or not 0 <= minor <= MAX_AMOUNT:
        raise ValueError(f"amount {minor!r} (minor units) is not 0..{MAX_AMOUNT}")
    return minor
