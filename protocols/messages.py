"""The message catalog of the wire protocol (wire page §4): builders and readers.

Both sides use these, so a request the host builds is exactly what the terminal reads.

>>> req = sign_on(stan=1, tid="TERM0001")
>>> req.mti, req.fields
('0800', {11: '000001', 41: 'TERM0001', 60: '00000000001'})
>>> network_code(req)
<NetCode.SIGN_ON: '001'>
>>> rsp = response_to(req, ResponseCode.APPROVED, {42: "MERCHANT0000001"})
>>> rsp.mti, rsp[39], rsp[11], rsp[41]
('0810', '00', '000001', 'TERM0001')

Download blocks and commits carry a MAC (§5):

>>> key = bytes(range(16))
>>> blk = sign(block(stan=2, tid="TERM0001", version=7, index=0, count=3, data=b"FEE1"), key)
>>> len(blk[64]), verify(blk, key)
(8, None)
>>> block_address(blk)
BlockAddress(version=7, index=0, count=3)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from protocols.codec import Message, Value, encode, mac_input
from protocols.errors import DecodeError, EncodeError, MacError, shown
from protocols.mac import cmac8, verify_cmac8

__all__ = [
    "MAX_BLOCK",
    "SIGNED_CODES",
    "BlockAddress",
    "EntryMode",
    "NetCode",
    "ResponseCode",
    "StanCounter",
    "amount_field",
    "block",
    "block_address",
    "commit",
    "download_status",
    "echo",
    "fee_field",
    "field60",
    "health",
    "key_change",
    "key_confirm",
    "network_code",
    "parse_amount",
    "parse_fee",
    "response_mti",
    "response_to",
    "sale",
    "sign",
    "sign_encoded",
    "sign_on",
    "verify",
]

MAX_BLOCK = 900
"""Most fee-table bytes one 0800/360 block carries in field 62."""


class NetCode(StrEnum):
    """Field 60.3: what a network-management (0800) request asks for.

    161, 162 and 303 are posfleet's additions to v1 (docs/protocol.md).
    """

    SIGN_ON = "001"
    KEY_CHANGE = "161"
    KEY_CONFIRM = "162"
    ECHO = "301"
    HEALTH = "303"
    BLOCK = "360"
    COMMIT = "361"
    STATUS = "362"


SIGNED_CODES = frozenset({NetCode.KEY_CHANGE, NetCode.KEY_CONFIRM, NetCode.BLOCK, NetCode.COMMIT})
"""The 0800 requests that carry a MAC (field 64), as do their responses."""


class ResponseCode(StrEnum):
    """Field 39 of every response."""

    APPROVED = "00"
    INVALID_REQUEST = "12"
    FORMAT_ERROR = "30"
    NO_FEE_RULE = "57"
    NOT_ACCEPTED = "63"
    VERSION_REFUSED = "76"
    OUT_OF_ORDER = "77"
    MAC_FAILED = "A0"
    TABLE_CHECK_FAILED = "F1"
    TERMINAL_ERROR = "96"
    # additions to v1 (docs/protocol.md)
    TAMPERED = "66"
    DUPLICATE = "94"
    KEY_CHECK_FAILED = "F2"

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ResponseCode.APPROVED: "approved / done",
    ResponseCode.INVALID_REQUEST: "invalid request",
    ResponseCode.FORMAT_ERROR: "format error",
    ResponseCode.NO_FEE_RULE: "no fee rule matches this sale",
    ResponseCode.NOT_ACCEPTED: "message not accepted (unknown TID)",
    ResponseCode.VERSION_REFUSED: "version refused (older than the active table)",
    ResponseCode.OUT_OF_ORDER: "block out of order",
    ResponseCode.MAC_FAILED: "MAC check failed",
    ResponseCode.TABLE_CHECK_FAILED: "digest, CRC or table format check failed",
    ResponseCode.TERMINAL_ERROR: "terminal error",
    ResponseCode.TAMPERED: "terminal tampered: downloads and key changes refused until replaced",
    ResponseCode.DUPLICATE: "duplicate transmission: this key request was already processed",
    ResponseCode.KEY_CHECK_FAILED: "key unwrap or key check value failed",
}


class EntryMode(StrEnum):
    """Field 22: how the card was read."""

    CHIP = "051"
    CONTACTLESS = "071"
    MAGSTRIPE = "021"
    QR = "039"


class StanCounter:
    """Thread-safe STAN source: 000001 … 999999, then wraps to 000001.

    >>> s = StanCounter(start=999999)
    >>> s.next(), s.next()
    (999999, 1)
    """

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= 999_999:
            raise ValueError("a STAN is 1..999999")
        self._it = itertools.count(start - 1)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._it) % 999_999 + 1


# --- field helpers --------------------------------------------------------------------


def _digits(value: int, width: int, field: int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what} must be an integer, got {type(value).__name__}", field=field)
    if not 0 <= value < 10**width:
        raise EncodeError(f"{what} {shown(value)} does not fit in {width} digits", field=field)
    return f"{value:0{width}d}"


def stan_field(stan: int) -> str:
    return _digits(stan, 6, 11, "STAN")


def amount_field(minor_units: int) -> str:
    """Field 4: an amount in minor units, 12 digits.

    >>> amount_field(10000)
    '000000010000'
    """
    return _digits(minor_units, 12, 4, "amount")


def parse_amount(msg: Message, field: int = 4) -> int:
    return int(_text(msg, field))


def fee_field(fee: int) -> str:
    """Field 28: the fee, ``D`` + 8 digits in minor units.

    >>> fee_field(61), parse_fee(Message("0210", {28: "D00000061"}))
    ('D00000061', 61)
    """
    return "D" + _digits(fee, 8, 28, "fee")


def parse_fee(msg: Message) -> int:
    value = _text(msg, 28)
    if len(value) != 9 or value[0] != "D" or not value[1:].isdigit():
        raise DecodeError(f"fee {value!r} is not 'D' + 8 digits", field=28)
    return int(value[1:])


def field60(code: NetCode | str, batch: int = 0) -> str:
    """Field 60: ``60.1`` = ``00``, ``60.2`` = 6-digit batch, ``60.3`` = 3-digit code.

    >>> field60(NetCode.BLOCK, batch=12)
    '00000012360'
    """
    code = NetCode(code)
    return "00" + _digits(batch, 6, 60, "batch") + code.value


def network_code(msg: Message) -> NetCode:
    """The 60.3 code of an 0800/0810 (``DecodeError`` when 60 is missing or malformed)."""
    value = _text(msg, 60)
    if len(value) != 11 or not value.isdigit():
        raise DecodeError(f"field 60 {value!r} is not 2+6+3 digits", field=60)
    try:
        return NetCode(value[8:])
    except ValueError:
        raise DecodeError(f"unknown network code 60.3={value[8:]!r}", field=60) from None


@dataclass(frozen=True, slots=True)
class BlockAddress:
    """Field 61: fee-table version, block index (from 0) and block count.

    >>> BlockAddress(42, 1, 8).encode()
    '0000004200010008'
    """

    version: int
    index: int
    count: int

    def encode(self) -> str:
        return (
            _digits(self.version, 8, 61, "version")
            + _digits(self.index, 4, 61, "block index")
            + _digits(self.count, 4, 61, "block count")
        )


def block_address(msg: Message) -> BlockAddress:
    value = _text(msg, 61)
    if len(value) != 16 or not value.isdigit():
        raise DecodeError(f"field 61 {value!r} is not 8+4+4 digits", field=61)
    return BlockAddress(int(value[:8]), int(value[8:12]), int(value[12:]))


def _text(msg: Message, field: int) -> str:
    value = msg.get(field)
    if value is None:
        raise DecodeError(f"{msg.mti} lacks field {field}", field=field)
    if not isinstance(value, str):
        raise DecodeError("expected text", field=field)
    return value


# --- requests (host → terminal) --------------------------------------------------------


def _network(stan: int, tid: str, code: NetCode, **fields: Value) -> Message:
    out: dict[int, Value] = {11: stan_field(stan), 41: tid, 60: field60(code)}
    out.update({int(k[1:]): v for k, v in fields.items()})
    return Message("0800", out)


def sign_on(stan: int, tid: str) -> Message:
    """0800/001: the terminal answers with model, serial, firmware and versions."""
    return _network(stan, tid, NetCode.SIGN_ON)


def echo(stan: int, tid: str) -> Message:
    """0800/301: line test."""
    return _network(stan, tid, NetCode.ECHO)


def download_status(stan: int, tid: str) -> Message:
    """0800/362: where to resume a broken download (tags 05 06 07)."""
    return _network(stan, tid, NetCode.STATUS)


def health(stan: int, tid: str) -> Message:
    """0800/303: the terminal's health (tags 10-16, :mod:`protocols.health`). Unsigned."""
    return _network(stan, tid, NetCode.HEALTH)


def key_change(stan: int, tid: str, tlv: bytes) -> Message:
    """0800/161: a new key (``tlv``: :class:`protocols.keys.KeyChange`). Sign it with the
    terminal's current key."""
    return _network(stan, tid, NetCode.KEY_CHANGE, f62=bytes(tlv))


def key_confirm(stan: int, tid: str, tlv: bytes) -> Message:
    """0800/162: confirm the new key (``tlv``: :class:`protocols.keys.KeyConfirm`). Sign it
    with the new key."""
    return _network(stan, tid, NetCode.KEY_CONFIRM, f62=bytes(tlv))


def block(stan: int, tid: str, version: int, index: int, count: int, data: bytes) -> Message:
    """0800/360: one block (≤ 900 bytes) of a fee table. Sign it before sending."""
    if not 0 < len(data) <= MAX_BLOCK:
        raise EncodeError(f"a block carries 1..{MAX_BLOCK} bytes, got {len(data)}", field=62)
    if not 0 <= index < count:
        raise EncodeError(f"block index {index} is outside 0..{count - 1}", field=61)
    addr = BlockAddress(version, index, count).encode()
    return _network(stan, tid, NetCode.BLOCK, f61=addr, f62=bytes(data))


def commit(stan: int, tid: str, version: int, count: int, digest: bytes) -> Message:
    """0800/361: all blocks sent; field 62 is the SHA-256 of the whole table. Sign it."""
    if len(digest) != 32:
        raise EncodeError(f"a SHA-256 digest is 32 bytes, got {len(digest)}", field=62)
    addr = BlockAddress(version, count, count).encode()
    return _network(stan, tid, NetCode.COMMIT, f61=addr, f62=bytes(digest))


def sale(
    stan: int,
    tid: str,
    amount: int,
    tlv: bytes,
    entry_mode: EntryMode | str = EntryMode.CHIP,
    currency: int = 156,
) -> Message:
    """0200 sale. ``tlv`` is field 62 (tag 01, the card type: see :mod:`protocols.tlv`)."""
    return Message(
        "0200",
        {
            3: "000000",
            4: amount_field(amount),
            11: stan_field(stan),
            22: EntryMode(entry_mode).value,
            41: tid,
            49: _digits(currency, 3, 49, "currency"),
            62: tlv,
        },
    )


# --- responses (terminal → host) -------------------------------------------------------


def response_mti(mti: str) -> str:
    """The response MTI of a request: ``0800`` → ``0810``, ``0200`` → ``0210``."""
    if len(mti) != 4 or not mti.isdigit() or int(mti[2]) % 2:
        raise EncodeError(f"{mti!r} is not a request MTI", field="MTI")
    return mti[:2] + str(int(mti[2]) + 1) + mti[3]


def response_to(
    request: Message, code: ResponseCode | str, fields: Mapping[int, Value] | None = None
) -> Message:
    """A response echoing the request's 11 and 41 (when present), with 39 = ``code``."""
    out: dict[int, Value] = {n: request.fields[n] for n in (11, 41) if n in request.fields}
    out[39] = ResponseCode(code).value
    if fields:
        out.update(fields)
    return Message(response_mti(request.mti), out)


# --- MAC (wire page §5) ----------------------------------------------------------------


def sign(msg: Message, key: bytes) -> Message:
    """A copy of ``msg`` with field 64 = the first 8 bytes of AES-CMAC over :func:`mac_input`."""
    mac = cmac8(key, mac_input(msg))
    return Message(msg.mti, {**msg.fields, 64: mac})


def sign_encoded(msg: Message, key: bytes) -> tuple[Message, bytes]:
    """:func:`sign` and the signed message's encoding, encoding it once: when field 64
    ends the message (no secondary-bitmap fields), the MAC input is the encoding with a
    zero MAC less its last 8 bytes, and the encoding is that input and the MAC."""
    fields = {**msg.fields, 64: bytes(8)}
    if max(fields) != 64:
        signed = sign(msg, key)
        return signed, encode(signed)
    head = encode(Message(msg.mti, fields))[:-8]
    mac = cmac8(key, head)
    return Message(msg.mti, {**msg.fields, 64: mac}), head + mac


def verify(msg: Message, key: bytes) -> None:
    """Raise :class:`~protocols.errors.MacError` unless field 64 is present and right."""
    mac = msg.get(64)
    if mac is None:
        raise MacError(f"{msg.mti} carries no MAC", field=64)
    if not isinstance(mac, bytes):  # pragma: no cover - the codec makes 64 bytes
        raise MacError("MAC is not binary", field=64)
    verify_cmac8(key, mac_input(msg), mac)
