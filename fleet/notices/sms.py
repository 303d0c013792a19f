"""SMS length: encoding, segments and cost. Pure, no I/O.

An SMS is sent in GSM-7 when every character is in the GSM 03.38 default alphabet or
its extension table (``^ { } \\ [ ~ ] | €`` and form feed cost two septets: an escape and
the character); otherwise the whole text is UCS-2, counted in UTF-16 code units. One
Chinese character — or a 【 】 signature — makes the whole text UCS-2.

==========  ===========  =====================
encoding    one segment  each of several
==========  ===========  =====================
GSM-7       160 septets  153 septets (UDH)
UCS-2       70 units     67 units (UDH)
==========  ===========  =====================

A segment boundary never splits an escape pair or a surrogate pair, as handsets and
SMSCs split them, so the count is the one the operator bills.

>>> count("Your terminal was replaced.")
SmsCount(encoding='GSM-7', units=27, segments=1)
>>> count("[posfleet] fee change")  # [ and ] are extension characters: 2 septets each
SmsCount(encoding='GSM-7', units=23, segments=1)
>>> count("【posfleet】您的终端已更换")
SmsCount(encoding='UCS-2', units=17, segments=1)
>>> count("a" * 161).segments, count("a" * 306).segments, count("a" * 307).segments
(2, 2, 3)
>>> count("费" * 70).segments, count("费" * 71).segments, count("费" * 134).segments
(1, 2, 2)
>>> cost(count("a" * 161), 5)
10
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SmsCount", "cost", "count", "is_gsm7"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The 128 characters of the GSM 03.38 default alphabet (the escape itself excluded)."""
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters sent as escape + code: two septets each."""

_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True, slots=True)
class SmsCount:
    encoding: str
    """``GSM-7`` or ``UCS-2``."""
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int


def is_gsm7(text: str) -> bool:
    """Every character fits GSM-7 (default alphabet or extension table)."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _widths(text: str) -> tuple[str, list[int]]:
    """The encoding and each character's width in units (2 for escapes / surrogates)."""
    if is_gsm7(text):
        return "GSM-7", [2 if c in GSM7_EXTENSION else 1 for c in text]
    return "UCS-2", [2 if ord(c) > 0xFFFF else 1 for c in text]


def count(text: str) -> SmsCount:
    """Encoding, units and segments of ``text`` (the whole SMS, signature included)."""
    encoding, widths = _widths(text)
    units = sum(widths)
    single, multi = _LIMITS[encoding]
    if units <= single:
        return SmsCount(encoding, units, 1 if units else 0)
    segments, filled = 1, 0
    for width in widths:  # pack greedily; a pair never straddles two segments
        if filled + width > multi:
            segments, filled = segments + 1, 0
        filled += width
    return SmsCount(encoding, units, segments)


def cost(sms: SmsCount, price_per_segment: int) -> int:
    """What the SMS costs, in the minor units ``price_per_segment`` is given in."""
    return sms.segments * price_per_segment
