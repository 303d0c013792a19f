"""The field table of the wire protocol, declared once.

This is the ISO 8583:1987 ``default`` layout of pyiso8583 (same field lengths and
length types), with the one change the wire page makes: fields 62 and 63 are
**binary** LLLVAR (max 999 bytes). Content types ``n`` (ASCII digits only) are enforced
for the fields the wire page lists as numeric; other ASCII fields accept any 7-bit
ASCII text, binary fields any bytes.

>>> SPEC[62]
FieldSpec(number=62, kind='LLLVAR', max_len=999, content='b', name='TLV data / download block')
>>> SPEC[4].kind, SPEC[4].max_len, SPEC[4].content
('fixed', 12, 'n')
>>> sorted(n for n, f in SPEC.items() if f.content == 'b')
[52, 55, 62, 63, 64, 65, 96, 128]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["fixed", "LLVAR", "LLLVAR"]
Content = Literal["n", "an", "ans", "b"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One data element: its number, length type, (maximum) length and content."""

    number: int
    kind: Kind
    max_len: int
    content: Content
    name: str

    @property
    def prefix_len(self) -> int:
        """Number of ASCII length digits before the data (0, 2 or 3)."""
        return {"fixed": 0, "LLVAR": 2, "LLLVAR": 3}[self.kind]

    @property
    def binary(self) -> bool:
        return self.content == "b"


def _f(number: int, kind: Kind, max_len: int, content: Content, name: str) -> FieldSpec:
    return FieldSpec(number, kind, max_len, content, name)


F: Kind = "fixed"
LL: Kind = "LLVAR"
LLL: Kind = "LLLVAR"

# number: (kind, max length, content, name). Content is strict ('n') only where the
# wire page says so; the rest of the default layout is carried as ASCII text or bytes.
_TABLE: dict[int, tuple[Kind, int, Content, str]] = {
    2: (LL, 19, "ans", "Primary Account Number (PAN)"),
    3: (F, 6, "n", "Processing code"),
    4: (F, 12, "n", "Amount, transaction (minor units)"),
    5: (F, 12, "ans", "Amount, settlement"),
    6: (F, 12, "ans", "Amount, cardholder billing"),
    7: (F, 10, "ans", "Transmission date and time"),
    8: (F, 8, "ans", "Amount, cardholder billing fee"),
    9: (F, 8, "ans", "Conversion rate, settlement"),
    10: (F, 8, "ans", "Conversion rate, cardholder billing"),
    11: (F, 6, "n", "System trace audit number (STAN)"),
    12: (F, 6, "ans", "Time, local transaction"),
    13: (F, 4, "ans", "Date, local transaction"),
    14: (F, 4, "ans", "Date, expiration"),
    15: (F, 4, "ans", "Date, settlement"),
    16: (F, 4, "ans", "Date, conversion"),
    17: (F, 4, "ans", "Date, capture"),
    18: (F, 4, "n", "Merchant category code (MCC)"),
    19: (F, 3, "ans", "Acquiring institution country code"),
    20: (F, 3, "ans", "PAN country code"),
    21: (F, 3, "ans", "Forwarding institution country code"),
    22: (F, 3, "n", "Point-of-service entry mode"),
    23: (F, 3, "ans", "PAN sequence number"),
    24: (F, 3, "ans", "Network international ID (NII)"),
    25: (F, 2, "ans", "Point-of-service condition code"),
    26: (F, 2, "ans", "Point-of-service capture code"),
    27: (F, 1, "ans", "Authorizing ID response length"),
    28: (F, 9, "an", "Fee: 'D' + 8 digits, minor units"),
    29: (F, 9, "ans", "Amount, settlement fee"),
    30: (F, 9, "ans", "Amount, transaction processing fee"),
    31: (F, 9, "ans", "Amount, settlement processing fee"),
    32: (LL, 11, "ans", "Acquiring institution ID code"),
    33: (LL, 11, "ans", "Forwarding institution ID code"),
    34: (LL, 28, "ans", "PAN, extended"),
    35: (LL, 37, "ans", "Track 2 data"),
    36: (LLL, 104, "ans", "Track 3 data"),
    37: (F, 12, "ans", "Retrieval reference number"),
    38: (F, 6, "an", "Approval code"),
    39: (F, 2, "an", "Response code"),
    40: (F, 3, "ans", "Service restriction code"),
    41: (F, 8, "ans", "Terminal ID (TID)"),
    42: (F, 15, "ans", "Merchant ID (MID)"),
    43: (F, 40, "ans", "Card acceptor name/location"),
    44: (LL, 25, "ans", "Additional response data"),
    45: (LL, 76, "ans", "Track 1 data"),
    46: (LLL, 999, "ans", "Additional data - ISO"),
    47: (LLL, 999, "ans", "Additional data - national"),
    48: (LLL, 999, "ans", "Additional data - private"),
    49: (F, 3, "n", "Currency code, ISO 4217 numeric"),
    50: (F, 3, "ans", "Currency code, settlement"),
    51: (F, 3, "ans", "Currency code, cardholder billing"),
    52: (F, 8, "b", "PIN data"),
    53: (F, 16, "ans", "Security-related control information"),
    54: (LLL, 240, "ans", "Additional amounts"),
    55: (LLL, 255, "b", "ICC data"),
    56: (LLL, 999, "ans", "Reserved ISO"),
    57: (LLL, 999, "ans", "Reserved national"),
    58: (LLL, 999, "ans", "Reserved national"),
    59: (LLL, 999, "ans", "Reserved national"),
    60: (LLL, 999, "ans", "Network management: 60.1 (2) + 60.2 batch (6) + 60.3 code (3)"),
    61: (LLL, 999, "ans", "Download block address: version (8) + index (4) + count (4)"),
    62: (LLL, 999, "b", "TLV data / download block"),
    63: (LLL, 999, "b", "Reserved private (binary)"),
    64: (F, 8, "b", "MAC"),
    65: (F, 8, "b", "Bitmap, extended"),
    66: (F, 1, "ans", "Settlement code"),
    67: (F, 2, "ans", "Extended payment code"),
    68: (F, 3, "ans", "Receiving institution country code"),
    69: (F, 3, "ans", "Settlement institution country code"),
    70: (F, 3, "ans", "Network management information code"),
    71: (F, 4, "ans", "Message number"),
    72: (F, 4, "ans", "Message number, last"),
    73: (F, 6, "ans", "Date, action"),
    74: (F, 10, "ans", "Credits, number"),
    75: (F, 10, "ans", "Credits, reversal number"),
    76: (F, 10, "ans", "Debits, number"),
    77: (F, 10, "ans", "Debits, reversal number"),
    78: (F, 10, "ans", "Transfer, number"),
    79: (F, 10, "ans", "Transfer, reversal number"),
    80: (F, 10, "ans", "Inquiries, number"),
    81: (F, 10, "ans", "Authorizations, number"),
    82: (F, 12, "ans", "Credits, processing fee amount"),
    83: (F, 12, "ans", "Credits, transaction fee amount"),
    84: (F, 12, "ans", "Debits, processing fee amount"),
    85: (F, 12, "ans", "Debits, transaction fee amount"),
    86: (F, 16, "ans", "Credits, amount"),
    87: (F, 16, "ans", "Credits, reversal amount"),
    88: (F, 16, "ans", "Debits, amount"),
    89: (F, 16, "ans", "Debits, reversal amount"),
    90: (F, 42, "ans", "Original data elements"),
    91: (F, 1, "ans", "File update code"),
    92: (F, 2, "ans", "File security code"),
    93: (F, 5, "ans", "Response indicator"),
    94: (F, 7, "ans", "Service indicator"),
    95: (F, 42, "ans", "Replacement amounts"),
    96: (F, 8, "b", "Message security code"),
    97: (F, 17, "ans", "Amount, net settlement"),
    98: (F, 25, "ans", "Payee"),
    99: (LL, 11, "ans", "Settlement institution ID code"),
    100: (LL, 11, "ans", "Receiving institution ID code"),
    101: (LL, 17, "ans", "File name"),
    102: (LL, 28, "ans", "Account ID 1"),
    103: (LL, 28, "ans", "Account ID 2"),
    104: (LLL, 100, "ans", "Transaction description"),
    **{n: (LLL, 999, "ans", "Reserved") for n in range(105, 128)},
    128: (F, 8, "b", "MAC (secondary)"),
}

SPEC: dict[int, FieldSpec] = {n: _f(n, *v) for n, v in sorted(_TABLE.items())}
"""Field number → :class:`FieldSpec`, for every data element 2..128 (1 is the bitmap)."""

assert set(SPEC) == set(range(2, 129)), "the spec must cover fields 2..128"
