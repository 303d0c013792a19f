"""TLV data of field 62 (wire page §3), declared with ``construct``.

Each item is a tag byte, a length byte and ``length`` value bytes; integers are unsigned
big-endian. :func:`encode_tlv` and :func:`decode_tlv` handle the raw items (unknown tags
are kept: the receiver skips what it does not know); the dataclasses
:class:`SaleRequest` (0200), :class:`SaleResult` (0210), :class:`SignOnInfo` (0810
sign-on) and :class:`DownloadStatus` (0810 of 362) give the typed values of each message.

:class:`Tag` also lists the tags posfleet adds to v1 (docs/protocol.md): health
(0x10-0x16, typed in :mod:`protocols.health`) and key versions and key change (0x20-0x23,
typed in :mod:`protocols.keys`). Their sizes are checked here like every known tag's;
:class:`TLVReader`, :func:`check_uint`, :func:`build_value` and :func:`tag_field` are the
helpers those modules share with this one. (The module is over 400 lines because it holds
every tag's wire format and the v1 messages' typed values in one place.)

>>> raw = encode_tlv({Tag.ACTIVE_VERSION: (7).to_bytes(4, "big"), 0x7F: b"?"})
>>> raw.hex(" ")
'05 04 00 00 00 07 7f 01 3f'
>>> decode_tlv(raw)
{5: b'\\x00\\x00\\x00\\x07', 127: b'?'}
>>> SaleResult(active_version=7, net_amount=9_939).to_tlv().hex(" ")
'05 04 00 00 00 07 09 08 00 00 00 00 00 00 26 d3'

Decoding is strict: a truncated item, a duplicate tag, or a known tag whose value has the
wrong size (or is not ASCII where ASCII is due) raises :class:`~protocols.errors.TLVError`
naming the tag (``field='62 tag 0x05'``) and the byte offset *into the field 62 value*
where the faulty item starts:

>>> decode_tlv(bytes.fromhex("7f0100 0503000000"))
Traceback (most recent call last):
...
protocols.errors.TLVError: field 62 tag 0x05 at byte 3: ACTIVE_VERSION value is 3 bytes, \
expected 4 (u32)

**Duplicate tags are an error**: TLVError on decode, EncodeError on encode. §3 gives every
tag one meaning, and "last wins" would let two readers of the same bytes disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Final, Self

import construct as cs

from protocols.errors import EncodeError, TLVError, shown
from protocols.values import Capability, CardType, unix_seconds, utc_datetime

__all__ = [
    "FIELD",
    "MAX_VALUE",
    "NO_PARTIAL_DOWNLOAD",
    "PARTIAL_DOWNLOAD",
    "TLV_ITEM",
    "VALUE_FORMATS",
    "DownloadStatus",
    "PartialDownload",
    "SaleRequest",
    "SaleResult",
    "SignOnInfo",
    "TLVReader",
    "Tag",
    "build_value",
    "check_uint",
    "decode_tlv",
    "encode_tlv",
    "tag_field",
]

FIELD: Final = 62
"""The ISO 8583 field that carries the TLV list."""
MAX_VALUE: Final = 255
"""Longest value one item can carry (one length byte)."""


class Tag(IntEnum):
    """The tags of §3."""

    CARD_TYPE = 0x01
    MODEL = 0x02
    SERIAL = 0x03
    FIRMWARE = 0x04
    ACTIVE_VERSION = 0x05
    PENDING_VERSION = 0x06
    PARTIAL_DOWNLOAD = 0x07
    CAPABILITIES = 0x08
    NET_AMOUNT = 0x09
    EFFECTIVE_TIME = 0x0A
    MCC = 0x0B
    # additions to v1 (docs/protocol.md): terminal health, in the sign-on and 0810/303
    BATTERY = 0x10
    PRINTER = 0x11
    CARD_READS = 0x12
    TAMPER = 0x13
    UPTIME = 0x14
    REBOOT_REASON = 0x15
    FREE_STORAGE = 0x16
    # additions to v1: key versions and key change (0800/161, 0800/162)
    KEY_VERSIONS = 0x20
    NEW_KEY_VERSION = 0x21
    WRAPPED_KEY = 0x22
    KEY_CHECK_VALUE = 0x23


# --- constructs --------------------------------------------------------------------------

TLV_ITEM: Final[Any] = cs.Struct(
    "tag" / cs.Int8ub,
    "value" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes),
)
"""One TLV item: tag u8, length u8, value. The list is items back to back."""

PARTIAL_DOWNLOAD: Final[Any] = cs.Struct(
    "version" / cs.Int32ub,
    "next_block" / cs.Int16ub,
)
"""Value of tag 0x07: fee-table version u32 + next expected block u16."""

_ASCII: Final[Any] = cs.GreedyString("ascii")

BATTERY: Final[Any] = cs.Struct(
    "level" / cs.Int8ub,
    "health" / cs.Int8ub,
    "cycles" / cs.Int32ub,
)
"""Value of tag 0x10: charge level %, capacity left % of new, full charge cycles."""
PRINTER: Final[Any] = cs.Struct("paper" / cs.Int8ub, "lines" / cs.Int32ub)
"""Value of tag 0x11: paper state (0 ok, 1 low, 2 out) and lines printed u32."""
CARD_READS: Final[Any] = cs.Struct(
    "chip" / cs.Int32ub,
    "contactless" / cs.Int32ub,
    "magstripe" / cs.Int32ub,
)
"""Value of tag 0x12: card reads by interface since manufacture, u32 each."""
TAMPER: Final[Any] = cs.Struct("state" / cs.Int8ub, "at" / cs.Int64ub)
"""Value of tag 0x13: 0 intact / 1 tripped, and when it tripped (Unix seconds, 0 = unknown)."""
KEY_VERSIONS: Final[Any] = cs.Struct("current" / cs.Int32ub, "next" / cs.Int32ub)
"""Value of tag 0x20: the MAC key version in use and the one awaiting confirmation (0)."""

VALUE_FORMATS: Final[Mapping[Tag, Any]] = {
    Tag.CARD_TYPE: cs.Int8ub,
    Tag.MODEL: _ASCII,
    Tag.SERIAL: _ASCII,
    Tag.FIRMWARE: _ASCII,
    Tag.ACTIVE_VERSION: cs.Int32ub,
    Tag.PENDING_VERSION: cs.Int32ub,
    Tag.PARTIAL_DOWNLOAD: PARTIAL_DOWNLOAD,
    Tag.CAPABILITIES: cs.Int16ub,
    Tag.NET_AMOUNT: cs.Int64ub,
    Tag.EFFECTIVE_TIME: cs.Int64ub,
    Tag.MCC: cs.Int16ub,
    Tag.BATTERY: BATTERY,
    Tag.PRINTER: PRINTER,
    Tag.CARD_READS: CARD_READS,
    Tag.TAMPER: TAMPER,
    Tag.UPTIME: cs.Int32ub,
    Tag.REBOOT_REASON: cs.Int8ub,
    Tag.FREE_STORAGE: cs.Int64ub,
    Tag.KEY_VERSIONS: KEY_VERSIONS,
    Tag.NEW_KEY_VERSION: cs.Int32ub,
    Tag.WRAPPED_KEY: cs.Bytes(24),
    Tag.KEY_CHECK_VALUE: cs.Bytes(3),
}
"""The construct of each known tag's value."""

_ASCII_TAGS: Final = frozenset({Tag.MODEL, Tag.SERIAL, Tag.FIRMWARE})
_SIZES: Final[Mapping[Tag, int]] = {
    tag: VALUE_FORMATS[tag].sizeof() for tag in Tag if tag not in _ASCII_TAGS
}
_KINDS: Final[Mapping[Tag, str]] = {
    Tag.CARD_TYPE: "u8",
    Tag.ACTIVE_VERSION: "u32",
    Tag.PENDING_VERSION: "u32",
    Tag.PARTIAL_DOWNLOAD: "u32 + u16",
    Tag.CAPABILITIES: "u16",
    Tag.NET_AMOUNT: "u64",
    Tag.EFFECTIVE_TIME: "u64",
    Tag.MCC: "u16",
    Tag.BATTERY: "u8 + u8 + u32",
    Tag.PRINTER: "u8 + u32",
    Tag.CARD_READS: "3 × u32",
    Tag.TAMPER: "u8 + u64",
    Tag.UPTIME: "u32",
    Tag.REBOOT_REASON: "u8",
    Tag.FREE_STORAGE: "u64",
    Tag.KEY_VERSIONS: "u32 + u32",
    Tag.NEW_KEY_VERSION: "u32",
    Tag.WRAPPED_KEY: "24 bytes",
    Tag.KEY_CHECK_VALUE: "3 bytes",
}


def tag_field(tag: int) -> str:
    return f"{FIELD} tag 0x{tag:02X}"


def _name(tag: int) -> str:
    try:
        return Tag(tag).name
    except ValueError:
        return f"tag 0x{tag:02X}"


# --- raw items ---------------------------------------------------------------------------


def _check_value(tag: int, value: bytes) -> str | None:
    """What is wrong with ``value`` for ``tag`` (None if fine or the tag is unknown)."""
    if tag in _ASCII_TAGS:
        if not value.isascii():
            bad = next(i for i, b in enumerate(value) if b > 0x7F)
            return f"{_name(tag)} value is not ASCII (byte {bad} of it is 0x{value[bad]:02X})"
        return None
    try:
        known = Tag(tag)
    except ValueError:
        return None  # unknown tag: its value is the receiver's to skip
    size = _SIZES[known]
    if len(value) != size:
        return f"{known.name} value is {len(value)} bytes, expected {size} ({_KINDS[known]})"
    return None


def encode_tlv(items: Mapping[int, bytes] | Iterable[tuple[int, bytes]]) -> bytes:
    """The field 62 bytes of ``items`` (a mapping or (tag, value) pairs), in their order.

    Tags are 0..255, values at most 255 bytes; a known tag's value must have its size
    (and be ASCII for 0x02-0x04); a tag may appear once. Otherwise EncodeError.

    >>> encode_tlv([(Tag.CARD_TYPE, b"\\x02"), (0x0B, (5411).to_bytes(2, "big"))]).hex(" ")
    '01 01 02 0b 02 15 23'
    >>> encode_tlv({0x02: b"x" * 256})
    Traceback (most recent call last):
    ...
    protocols.errors.EncodeError: field 62 tag 0x02: MODEL value is 256 bytes, at most 255 fit
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    out = bytearray()
    seen: set[int] = set()
    for pair in pairs:
        try:
            tag, value = pair
        except (TypeError, ValueError):
            raise EncodeError(f"{pair!r} is not a (tag, value) pair", field=FIELD) from None
        if isinstance(tag, bool) or not isinstance(tag, int) or not 0 <= tag <= 0xFF:
            raise EncodeError(f"tag {tag!r} is not an integer 0..255", field=FIELD)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise EncodeError(
                f"{_name(tag)} value must be bytes, not {type(value).__name__}",
                field=tag_field(tag),
            )
        value = bytes(value)
        if tag in seen:
            raise EncodeError(f"duplicate tag 0x{tag:02X}", field=tag_field(tag))
        seen.add(tag)
        if len(value) > MAX_VALUE:
            raise EncodeError(
                f"{_name(tag)} value is {len(value)} bytes, at most {MAX_VALUE} fit",
                field=tag_field(tag),
            )
        problem = _check_value(tag, value)
        if problem is not None:
            raise EncodeError(problem, field=tag_field(tag))
        out += bytes((tag, len(value))) + value  # what TLV_ITEM builds, without its overhead
    return bytes(out)


def _decode(data: bytes | bytearray | memoryview) -> dict[int, tuple[int, bytes]]:
    """Tag -> (offset of the item, value), validated as :func:`decode_tlv` says."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"TLV data must be bytes, not {type(data).__name__}")
    view = bytes(data)
    out: dict[int, tuple[int, bytes]] = {}
    start, size = 0, len(view)
    while start < size:
        # what TLV_ITEM parses, without its overhead (15 µs an item: a sign-on answer with
        # the health and key tags has 17 items, and a host reads thousands of them)
        if start + 2 > size or start + 2 + view[start + 1] > size:
            raise _truncated(view, start)
        tag = view[start]
        end = start + 2 + view[start + 1]
        value = view[start + 2 : end]
        if tag in out:
            raise TLVError(
                f"duplicate tag 0x{tag:02X} (first at byte {out[tag][0]})",
                field=tag_field(tag),
                offset=start,
            )
        problem = _check_value(tag, value)
        if problem is not None:
            raise TLVError(problem, field=tag_field(tag), offset=start)
        out[tag] = (start, value)
        start = end
    return out


def _truncated(view: bytes, start: int) -> TLVError:
    tag = view[start]
    left = len(view) - start - 1
    if left == 0:
        return TLVError(
            f"truncated: {_name(tag)} item has no length byte", field=tag_field(tag), offset=start
        )
    return TLVError(
        f"truncated: {_name(tag)} item says {view[start + 1]} value bytes, only {left - 1} left",
        field=tag_field(tag),
        offset=start,
    )


def decode_tlv(data: bytes | bytearray | memoryview) -> dict[int, bytes]:
    """Tag -> value of every item of a field 62 value, in order; unknown tags included.

    Raises TLVError (with the offset of the faulty item) for a truncated item, a
    duplicate tag, or a known tag's value of the wrong size or not ASCII.

    >>> decode_tlv(b"")
    {}
    >>> decode_tlv(bytes.fromhex("0101 02 0b02"))
    Traceback (most recent call last):
    ...
    protocols.errors.TLVError: field 62 tag 0x0B at byte 3: truncated: MCC item says 2 value \
bytes, only 0 left
    """
    return {tag: value for tag, (_, value) in _decode(data).items()}


# --- typed values ------------------------------------------------------------------------


def check_uint(tag: Tag, value: int, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(
            f"{tag.name} must be an int, not {type(value).__name__}", field=tag_field(tag)
        )
    if not 0 <= value < 1 << bits:
        raise EncodeError(f"{tag.name} {shown(value)} does not fit u{bits}", field=tag_field(tag))
    return value


def _ascii(tag: Tag, value: str) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(
            f"{tag.name} must be str, not {type(value).__name__}", field=tag_field(tag)
        )
    if not value.isascii():
        raise EncodeError(f"{tag.name} {value!r} is not ASCII", field=tag_field(tag))
    raw = value.encode("ascii")
    if len(raw) > MAX_VALUE:
        raise EncodeError(
            f"{tag.name} is {len(raw)} characters, at most {MAX_VALUE} fit", field=tag_field(tag)
        )
    return raw


def _card_type(value: int, *, field: str) -> CardType:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"card type must be an int, not {type(value).__name__}", field=field)
    if not CardType.DEBIT <= value <= CardType.QR_WALLET:
        raise EncodeError(f"card type {shown(value)} of a sale is not 1..4", field=field)
    return CardType(value)


_COMPILED: dict[Tag, Any] = {}


def _format(tag: Tag) -> Any:
    """The compiled construct of ``tag``'s value (compiled on first use: about 3× faster
    to build and parse; sizes are checked before any parse, so compiled construct's
    missing short-read checks never matter here)."""
    compiled = _COMPILED.get(tag)
    if compiled is None:
        compiled = _COMPILED[tag] = VALUE_FORMATS[tag].compile()
    return compiled


def build_value(tag: Tag, value: object) -> bytes:
    raw: bytes = _format(tag).build(value)
    return raw


class TLVReader:
    """Typed access to the decoded items, with the offsets for errors."""

    def __init__(self, data: bytes) -> None:
        self.items = _decode(data)

    def raw(self, tag: Tag) -> tuple[int, bytes]:
        try:
            return self.items[tag]
        except KeyError:
            raise TLVError(
                f"{tag.name} (tag 0x{tag:02X}) is missing", field=tag_field(tag)
            ) from None

    def has(self, tag: Tag) -> bool:
        return tag in self.items

    def error(self, tag: Tag, reason: str) -> TLVError:
        """A TLVError about ``tag``'s value, at its item's offset."""
        return TLVError(reason, field=tag_field(tag), offset=self.items[tag][0])

    def value(self, tag: Tag) -> Any:
        return _format(tag).parse(self.raw(tag)[1])

    def uint(self, tag: Tag) -> int:
        number: int = self.value(tag)
        return number

    def ascii(self, tag: Tag) -> str:
        text: str = self.value(tag)
        return text

    def partial(self) -> PartialDownload:
        parsed = self.value(Tag.PARTIAL_DOWNLOAD)
        return PartialDownload(version=parsed.version, next_block=parsed.next_block)

    def time(self, tag: Tag) -> datetime:
        offset, _ = self.raw(tag)
        try:
            return utc_datetime(self.uint(tag))
        except ValueError as exc:
            raise TLVError(f"{tag.name}: {exc}", field=tag_field(tag), offset=offset) from None

    def card_type(self) -> CardType:
        offset, _ = self.raw(Tag.CARD_TYPE)
        value = self.uint(Tag.CARD_TYPE)
        if not CardType.DEBIT <= value <= CardType.QR_WALLET:
            raise TLVError(
                f"card type {value} is not 1..4", field=tag_field(Tag.CARD_TYPE), offset=offset
            )
        return CardType(value)


@dataclass(frozen=True, slots=True)
class PartialDownload:
    """Tag 0x07: the fee-table version being downloaded and the next block it expects.

    Version 0 means no download in progress (:data:`NO_PARTIAL_DOWNLOAD`).
    """

    version: int
    next_block: int

    def __post_init__(self) -> None:
        check_uint(Tag.PARTIAL_DOWNLOAD, self.version, 32)
        check_uint(Tag.PARTIAL_DOWNLOAD, self.next_block, 16)

    @property
    def in_progress(self) -> bool:
        """True unless version is 0 (no download to resume)."""
        return self.version != 0

    def to_bytes(self) -> bytes:
        """The 6-byte value of tag 0x07.

        >>> PartialDownload(version=7, next_block=2).to_bytes().hex(" ")
        '00 00 00 07 00 02'
        """
        return build_value(
            Tag.PARTIAL_DOWNLOAD, {"version": self.version, "next_block": self.next_block}
        )


NO_PARTIAL_DOWNLOAD: Final = PartialDownload(version=0, next_block=0)
"""Tag 0x07 of a terminal with no download in progress."""


@dataclass(frozen=True, slots=True)
class SaleRequest:
    """Field 62 of a 0200 sale: tag 0x01, the card type (1..4).

    >>> SaleRequest(CardType.CREDIT).to_tlv()
    b'\\x01\\x01\\x02'
    >>> SaleRequest.from_tlv(b"\\x01\\x01\\x02")
    SaleRequest(card_type=<CardType.CREDIT: 2>)
    """

    card_type: CardType

    def __post_init__(self) -> None:
        ct = _card_type(self.card_type, field=tag_field(Tag.CARD_TYPE))
        object.__setattr__(self, "card_type", ct)

    def to_tlv(self) -> bytes:
        """The field 62 bytes."""
        return encode_tlv([(Tag.CARD_TYPE, build_value(Tag.CARD_TYPE, self.card_type))])

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62 of a 0200; TLVError if tag 0x01 is missing or not 1..4."""
        return cls(card_type=TLVReader(data).card_type())


@dataclass(frozen=True, slots=True)
class SaleResult:
    """Field 62 of a 0210: tag 0x05 the active fee-table version, 0x09 the net amount."""

    active_version: int
    net_amount: int

    def __post_init__(self) -> None:
        check_uint(Tag.ACTIVE_VERSION, self.active_version, 32)
        check_uint(Tag.NET_AMOUNT, self.net_amount, 64)

    def to_tlv(self) -> bytes:
        """The field 62 bytes: tags 0x05 and 0x09."""
        return encode_tlv(
            [
                (Tag.ACTIVE_VERSION, build_value(Tag.ACTIVE_VERSION, self.active_version)),
                (Tag.NET_AMOUNT, build_value(Tag.NET_AMOUNT, self.net_amount)),
            ]
        )

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62 of a 0210 (other tags are skipped).

        >>> SaleResult.from_tlv(bytes.fromhex("0504 00000007 0908 00000000000026d3"))
        SaleResult(active_version=7, net_amount=9939)
        """
        r = TLVReader(data)
        return cls(active_version=r.uint(Tag.ACTIVE_VERSION), net_amount=r.uint(Tag.NET_AMOUNT))


@dataclass(frozen=True, slots=True)
class DownloadStatus:
    """Field 62 of the 0810 of a 362 download status: tags 0x05, 0x06, 0x07.

    >>> st = DownloadStatus(active_version=6, pending_version=0,
    ...                     partial=PartialDownload(version=7, next_block=3))
    >>> st.to_tlv().hex(" ")
    '05 04 00 00 00 06 06 04 00 00 00 00 07 06 00 00 00 07 00 03'
    >>> DownloadStatus.from_tlv(st.to_tlv()) == st
    True
    """

    active_version: int
    pending_version: int
    partial: PartialDownload = NO_PARTIAL_DOWNLOAD

    def __post_init__(self) -> None:
        check_uint(Tag.ACTIVE_VERSION, self.active_version, 32)
        check_uint(Tag.PENDING_VERSION, self.pending_version, 32)
        if not isinstance(self.partial, PartialDownload):
            raise EncodeError("partial must be a PartialDownload", field=tag_field(7))

    def to_tlv(self) -> bytes:
        """The field 62 bytes: tags 0x05, 0x06, 0x07."""
        return encode_tlv(
            [
                (Tag.ACTIVE_VERSION, build_value(Tag.ACTIVE_VERSION, self.active_version)),
                (Tag.PENDING_VERSION, build_value(Tag.PENDING_VERSION, self.pending_version)),
                (Tag.PARTIAL_DOWNLOAD, self.partial.to_bytes()),
            ]
        )

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62; TLVError if one of the three tags is missing or malformed."""
        r = TLVReader(data)
        return cls(
            active_version=r.uint(Tag.ACTIVE_VERSION),
            pending_version=r.uint(Tag.PENDING_VERSION),
            partial=r.partial(),
        )


@dataclass(frozen=True, slots=True)
class SignOnInfo:
    """Field 62 of the 0810 of a sign-on: tags 02 03 04 05 06 07 08 0A 0B, all required.

    Versions are 0 for none; ``partial`` is :data:`NO_PARTIAL_DOWNLOAD` when no download
    is in progress; ``pending_effective`` is the pending table's effective time (the
    epoch when there is no pending table, since tag 0x0A is always sent).

    >>> from datetime import UTC
    >>> info = SignOnInfo(model="PF-200", serial="PF00000001", firmware="1.4.2",
    ...                   active_version=6, pending_version=7,
    ...                   capabilities=Capability.CHIP | Capability.CONTACTLESS,
    ...                   pending_effective=datetime(2025, 1, 1, tzinfo=UTC), mcc=5411)
    >>> raw = info.to_tlv()
    >>> len(raw), SignOnInfo.from_tlv(raw) == info
    (65, True)
    """

    model: str
    serial: str
    firmware: str
    active_version: int
    pending_version: int
    capabilities: Capability
    pending_effective: datetime
    mcc: int
    partial: PartialDownload = NO_PARTIAL_DOWNLOAD

    def __post_init__(self) -> None:
        _ascii(Tag.MODEL, self.model)
        _ascii(Tag.SERIAL, self.serial)
        _ascii(Tag.FIRMWARE, self.firmware)
        check_uint(Tag.ACTIVE_VERSION, self.active_version, 32)
        check_uint(Tag.PENDING_VERSION, self.pending_version, 32)
        caps = check_uint(Tag.CAPABILITIES, self.capabilities, 16)
        object.__setattr__(self, "capabilities", Capability(caps))
        seconds = unix_seconds(self.pending_effective, field=tag_field(Tag.EFFECTIVE_TIME))
        object.__setattr__(self, "pending_effective", utc_datetime(seconds))
        if check_uint(Tag.MCC, self.mcc, 16) > 9999:
            raise EncodeError(f"MCC {self.mcc} is not 0..9999", field=tag_field(Tag.MCC))
        if not isinstance(self.partial, PartialDownload):
            raise EncodeError("partial must be a PartialDownload", field=tag_field(7))

    def to_tlv(self) -> bytes:
        """The field 62 bytes, tags in ascending order."""
        return encode_tlv(
            [
                (Tag.MODEL, _ascii(Tag.MODEL, self.model)),
                (Tag.SERIAL, _ascii(Tag.SERIAL, self.serial)),
                (Tag.FIRMWARE, _ascii(Tag.FIRMWARE, self.firmware)),
                (Tag.ACTIVE_VERSION, build_value(Tag.ACTIVE_VERSION, self.active_version)),
                (Tag.PENDING_VERSION, build_value(Tag.PENDING_VERSION, self.pending_version)),
                (Tag.PARTIAL_DOWNLOAD, self.partial.to_bytes()),
                (Tag.CAPABILITIES, build_value(Tag.CAPABILITIES, int(self.capabilities))),
                (
                    Tag.EFFECTIVE_TIME,
                    build_value(Tag.EFFECTIVE_TIME, unix_seconds(self.pending_effective)),
                ),
                (Tag.MCC, build_value(Tag.MCC, self.mcc)),
            ]
        )

    @classmethod
    def from_tlv(cls, data: bytes) -> Self:
        """Read field 62 of a sign-on 0810 (unknown tags skipped); TLVError on any fault."""
        r = TLVReader(data)
        mcc_offset, _ = r.raw(Tag.MCC)
        mcc = r.uint(Tag.MCC)
        if mcc > 9999:
            raise TLVError(f"MCC {mcc} is not 0..9999", field=tag_field(Tag.MCC), offset=mcc_offset)
        return cls(
            model=r.ascii(Tag.MODEL),
            serial=r.ascii(Tag.SERIAL),
            firmware=r.ascii(Tag.FIRMWARE),
            active_version=r.uint(Tag.ACTIVE_VERSION),
            pending_version=r.uint(Tag.PENDING_VERSION),
            partial=r.partial(),
            capabilities=Capability(r.uint(Tag.CAPABILITIES)),
            pending_effective=r.time(Tag.EFFECTIVE_TIME),
            mcc=mcc,
        )
