"""TLV data of field 62 (wire page §3)."""

from __future__ import annotations

import contextlib
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import EncodeError, TLVError
from protocols.health import HealthInfo
from protocols.keys import KeyChange, KeyVersions
from protocols.tlv import (
    NO_PARTIAL_DOWNLOAD,
    PARTIAL_DOWNLOAD,
    TLV_ITEM,
    VALUE_FORMATS,
    DownloadStatus,
    PartialDownload,
    SaleRequest,
    SaleResult,
    SignOnInfo,
    Tag,
    decode_tlv,
    encode_tlv,
)
from protocols.values import Capability, CardType, unix_seconds, utc_datetime
from tests.helpers import common

JAN1 = datetime(2025, 1, 1, tzinfo=UTC)

# --- golden vectors, byte by byte ----------------------------------------------------------

SIGN_ON = bytes.fromhex(
    "02 06 50 46 2d 32 30 30"  # model "PF-200"
    "03 0a 50 46 30 30 30 30 30 30 30 31"  # serial "PF00000001"
    "04 05 31 2e 34 2e 32"  # firmware "1.4.2"
    "05 04 00 00 00 06"  # active version 6
    "06 04 00 00 00 07"  # pending version 7
    "07 06 00 00 00 07 00 03"  # partial download: version 7, next block 3
    "08 02 00 13"  # capabilities: chip | contactless | PIN pad
    "0a 08 00 00 00 00 67 74 85 80"  # pending effective 1735689600 = 2025-01-01T00:00:00Z
    "0b 02 15 23"  # MCC 5411
)
SIGN_ON_INFO = SignOnInfo(
    model="PF-200",
    serial="PF00000001",
    firmware="1.4.2",
    active_version=6,
    pending_version=7,
    partial=PartialDownload(version=7, next_block=3),
    capabilities=Capability.CHIP | Capability.CONTACTLESS | Capability.PIN_PAD,
    pending_effective=JAN1,
    mcc=5411,
)


def test_item_construct() -> None:
    common(TLV_ITEM, bytes.fromhex("05 04 00 00 00 07"), {"tag": 5, "value": b"\0\0\0\x07"}, -1)
    common(TLV_ITEM, bytes.fromhex("7f 00"), {"tag": 0x7F, "value": b""}, -1)
    common(TLV_ITEM, b"\x02\xff" + b"M" * 255, {"tag": 2, "value": b"M" * 255}, -1)


def test_partial_download_construct() -> None:
    common(PARTIAL_DOWNLOAD, bytes.fromhex("00 00 00 07 00 03"), {"version": 7, "next_block": 3})


@pytest.mark.parametrize(
    ("tag", "data", "value"),
    [
        (Tag.CARD_TYPE, "02", 2),
        (Tag.ACTIVE_VERSION, "00 00 01 00", 256),
        (Tag.PENDING_VERSION, "ff ff ff ff", 2**32 - 1),
        (Tag.CAPABILITIES, "00 1f", 0x1F),
        (Tag.NET_AMOUNT, "00 00 00 00 00 00 26 d3", 9939),
        (Tag.EFFECTIVE_TIME, "00 00 00 00 67 74 85 80", 1_735_689_600),
        (Tag.MCC, "15 23", 5411),
    ],
)
def test_fixed_value_constructs(tag: Tag, data: str, value: int) -> None:
    common(VALUE_FORMATS[tag], bytes.fromhex(data), value)


def test_ascii_value_construct() -> None:
    common(VALUE_FORMATS[Tag.MODEL], b"PF-200", "PF-200", -1)


def test_sign_on_golden() -> None:
    assert SIGN_ON_INFO.to_tlv() == SIGN_ON
    assert SignOnInfo.from_tlv(SIGN_ON) == SIGN_ON_INFO
    info = SignOnInfo.from_tlv(SIGN_ON)
    assert info.pending_effective.tzinfo is UTC
    assert isinstance(info.capabilities, Capability)
    assert Capability.PIN_PAD in info.capabilities
    assert Capability.MAGSTRIPE not in info.capabilities
    assert info.partial.in_progress


def test_sign_on_golden_raw() -> None:
    items = decode_tlv(SIGN_ON)
    assert list(items) == [2, 3, 4, 5, 6, 7, 8, 10, 11]
    assert items[Tag.SERIAL] == b"PF00000001"
    assert encode_tlv(items) == SIGN_ON
    assert encode_tlv(list(items.items())) == SIGN_ON


def test_sign_on_skips_unknown_tags_anywhere() -> None:
    noisy = b"\xee\x03abc" + SIGN_ON[:8] + b"\x7f\x00" + SIGN_ON[8:] + b"\xff\x01\x00"
    assert SignOnInfo.from_tlv(noisy) == SIGN_ON_INFO
    assert decode_tlv(noisy)[0xEE] == b"abc"
    assert decode_tlv(noisy)[0x7F] == b""


def test_sign_on_order_does_not_matter() -> None:
    items = list(decode_tlv(SIGN_ON).items())
    assert SignOnInfo.from_tlv(encode_tlv(reversed(items))) == SIGN_ON_INFO


def test_sign_on_normalises() -> None:
    cst = timezone(timedelta(hours=8))
    info = SignOnInfo(
        model="",
        serial="S",
        firmware="f",
        active_version=0,
        pending_version=0,
        capabilities=0,  # type: ignore[arg-type]
        pending_effective=datetime(1970, 1, 1, 8, tzinfo=cst),
        mcc=0,
    )
    assert info.pending_effective == datetime(1970, 1, 1, tzinfo=UTC)
    assert info.pending_effective.tzinfo is UTC
    assert info.capabilities is Capability(0)
    assert info.partial == NO_PARTIAL_DOWNLOAD
    assert not info.partial.in_progress
    assert SignOnInfo.from_tlv(info.to_tlv()) == info


def test_sale_request_golden() -> None:
    assert SaleRequest(CardType.QR_WALLET).to_tlv() == bytes.fromhex("01 01 04")
    assert SaleRequest.from_tlv(bytes.fromhex("01 01 01")).card_type is CardType.DEBIT
    assert SaleRequest(2).card_type is CardType.CREDIT  # type: ignore[arg-type]


def test_sale_result_golden() -> None:
    raw = bytes.fromhex(
        "05 04 00 00 00 07"  # active version 7
        "09 08 00 00 00 00 00 00 26 d3"  # net amount 9939
    )
    assert SaleResult(active_version=7, net_amount=9939).to_tlv() == raw
    assert SaleResult.from_tlv(raw) == SaleResult(7, 9939)


def test_download_status_golden() -> None:
    raw = bytes.fromhex(
        "05 04 00 00 00 06"  # active 6
        "06 04 00 00 00 00"  # no pending table
        "07 06 00 00 00 07 00 02"  # downloading version 7, block 2 expected next
    )
    status = DownloadStatus(6, 0, PartialDownload(7, 2))
    assert status.to_tlv() == raw
    assert DownloadStatus.from_tlv(raw) == status
    assert DownloadStatus(6, 0).partial == NO_PARTIAL_DOWNLOAD


def test_empty() -> None:
    assert decode_tlv(b"") == {}
    assert encode_tlv({}) == b""
    assert encode_tlv([]) == b""


def test_value_of_255_bytes() -> None:
    raw = encode_tlv({0x40: bytes(255)})
    assert raw[:2] == b"\x40\xff"
    assert decode_tlv(raw) == {0x40: bytes(255)}


# --- decode errors ---------------------------------------------------------------------------


def expect(data: bytes, field: str | int, offset: int | None, match: str) -> TLVError:
    with pytest.raises(TLVError, match=match) as info:
        decode_tlv(data)
    assert (info.value.field, info.value.offset) == (field, offset), str(info.value)
    return info.value


def test_truncated_length_byte() -> None:
    expect(bytes.fromhex("01 01 02 05"), "62 tag 0x05", 3, "has no length byte")


def test_truncated_value() -> None:
    err = expect(bytes.fromhex("01 01 02 05 04 00 00"), "62 tag 0x05", 3, "truncated")
    assert "says 4 value bytes, only 2 left" in str(err)


def test_every_truncation_of_sign_on_is_an_error() -> None:
    boundaries = set()
    pos = 0
    while pos < len(SIGN_ON):
        boundaries.add(pos)
        pos += 2 + SIGN_ON[pos + 1]
    for n in range(1, len(SIGN_ON)):
        if n in boundaries:  # cut between items: a shorter, valid list
            decode_tlv(SIGN_ON[:n])  # no error
            with pytest.raises(TLVError, match="missing"):
                SignOnInfo.from_tlv(SIGN_ON[:n])
        else:
            with pytest.raises(TLVError, match="truncated") as info:
                decode_tlv(SIGN_ON[:n])
            assert info.value.offset == max(b for b in boundaries if b < n)


@pytest.mark.parametrize("tag", [t for t in Tag if t not in (Tag.MODEL, Tag.SERIAL, Tag.FIRMWARE)])
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_size_for_tag(tag: Tag, delta: int) -> None:
    size = VALUE_FORMATS[tag].sizeof()
    data = b"\x7f\x01\x00" + bytes([tag, size + delta]) + bytes(size + delta)
    err = expect(data, f"62 tag 0x{tag:02X}", 3, f"value is {size + delta} bytes, expected {size}")
    assert tag.name in str(err)


def test_non_ascii_string() -> None:
    expect(b"\x01\x01\x01\x02\x03ab\xe9", "62 tag 0x02", 3, "MODEL value is not ASCII")


def test_duplicate_tag_is_an_error() -> None:
    err = expect(bytes.fromhex("05 04 00000001 01 01 02 05 04 00000002"), "62 tag 0x05", 9, "dup")
    assert "first at byte 0" in str(err)
    # unknown tags too
    expect(bytes.fromhex("f0 00 f0 00"), "62 tag 0xF0", 2, "duplicate tag 0xF0")


def test_decode_wants_bytes() -> None:
    with pytest.raises(TypeError):
        decode_tlv("0101")  # type: ignore[arg-type]
    assert decode_tlv(bytearray(b"\x01\x01\x02")) == {1: b"\x02"}
    assert decode_tlv(memoryview(b"\x01\x01\x02")) == {1: b"\x02"}


def test_error_is_picklable() -> None:
    with pytest.raises(TLVError) as info:
        decode_tlv(b"\x05\x03\x00\x00\x00")
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is TLVError
    assert str(back) == str(info.value)


# --- typed decode errors ---------------------------------------------------------------------


def test_missing_tag() -> None:
    with pytest.raises(TLVError, match="NET_AMOUNT \\(tag 0x09\\) is missing") as info:
        SaleResult.from_tlv(bytes.fromhex("05 04 00 00 00 07"))
    assert info.value.field == "62 tag 0x09"


@pytest.mark.parametrize("card", [0, 5, 255])
def test_sale_card_type_out_of_range(card: int) -> None:
    with pytest.raises(TLVError, match=f"card type {card} is not 1..4") as info:
        SaleRequest.from_tlv(b"\x7f\x00\x01\x01" + bytes([card]))
    assert (info.value.field, info.value.offset) == ("62 tag 0x01", 2)


def test_effective_beyond_datetime() -> None:
    data = SIGN_ON.replace(
        bytes.fromhex("0a 08 00 00 00 00 67 74 85 80"), b"\x0a\x08" + b"\xff" * 8
    )
    with pytest.raises(TLVError, match=r"outside 1970\.\.9999") as info:
        SignOnInfo.from_tlv(data)
    assert (info.value.field, info.value.offset) == ("62 tag 0x0A", 51)


def test_mcc_beyond_9999() -> None:
    data = SIGN_ON[:-2] + (10000).to_bytes(2, "big")
    with pytest.raises(TLVError, match="MCC 10000") as info:
        SignOnInfo.from_tlv(data)
    assert (info.value.field, info.value.offset) == ("62 tag 0x0B", len(SIGN_ON) - 4)


def test_unknown_capability_bits_are_kept() -> None:
    data = SIGN_ON.replace(bytes.fromhex("08 02 00 13"), bytes.fromhex("08 02 80 01"))
    info = SignOnInfo.from_tlv(data)
    assert int(info.capabilities) == 0x8001
    assert Capability.CHIP in info.capabilities
    assert info.to_tlv() == data


# --- encode errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "field", "match"),
    [
        ({0x02: b"x" * 256}, "62 tag 0x02", "256 bytes, at most 255"),
        ({0x7F: b"x" * 300}, "62 tag 0x7F", "300 bytes, at most 255"),
        ({256: b""}, 62, "tag 256 is not an integer 0..255"),
        ({-1: b""}, 62, "tag -1"),
        ([(True, b"")], 62, "tag True"),
        ([("5", b"")], 62, "tag '5'"),
        ({0x05: b"\x00\x00\x07"}, "62 tag 0x05", "3 bytes, expected 4"),
        ({0x03: "PF1"}, "62 tag 0x03", "must be bytes, not str"),
        ({0x04: "é".encode()}, "62 tag 0x04", "not ASCII"),
        ([(1, b"\x01"), (1, b"\x02")], "62 tag 0x01", "duplicate tag 0x01"),
        ("ab", 62, "'a' is not a \\(tag, value\\) pair"),
        ([(1, b"\x01", 2)], 62, "is not a \\(tag, value\\) pair"),
    ],
)
def test_encode_errors(items: object, field: str | int, match: str) -> None:
    with pytest.raises(EncodeError, match=match) as info:
        encode_tlv(items)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": "é"}, "62 tag 0x02"),
        ({"serial": "S" * 256}, "62 tag 0x03"),
        ({"firmware": b"1.0"}, "62 tag 0x04"),
        ({"active_version": 2**32}, "62 tag 0x05"),
        ({"pending_version": -1}, "62 tag 0x06"),
        ({"capabilities": 0x10000}, "62 tag 0x08"),
        ({"pending_effective": datetime(2025, 1, 1)}, "62 tag 0x0A"),
        ({"pending_effective": 1_735_689_600.0}, "62 tag 0x0A"),
        ({"mcc": 10000}, "62 tag 0x0B"),
        ({"mcc": True}, "62 tag 0x0B"),
        ({"partial": (7, 3)}, "62 tag 0x07"),
    ],
)
def test_sign_on_validation(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "model": "m",
        "serial": "s",
        "firmware": "f",
        "active_version": 1,
        "pending_version": 0,
        "capabilities": Capability.CHIP,
        "pending_effective": JAN1,
        "mcc": 5411,
    }
    args.update(kwargs)
    with pytest.raises(EncodeError) as info:
        SignOnInfo(**args)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("card", [0, 5, True, 2.0])
def test_sale_request_validation(card: object) -> None:
    with pytest.raises(EncodeError):
        SaleRequest(card)  # type: ignore[arg-type]


def test_other_validation() -> None:
    with pytest.raises(EncodeError):
        SaleResult(1, -1)
    with pytest.raises(EncodeError):
        SaleResult(1, 2**64)
    with pytest.raises(EncodeError):
        PartialDownload(1, 0x10000)
    with pytest.raises(EncodeError):
        DownloadStatus(1, 2, partial=None)  # type: ignore[arg-type]
    assert SaleResult(2**32 - 1, 2**64 - 1).to_tlv()[-8:] == b"\xff" * 8


def test_unix_seconds() -> None:
    assert unix_seconds(JAN1) == 1_735_689_600
    assert utc_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert utc_datetime(253_402_300_799) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(ValueError):
        utc_datetime(253_402_300_800)
    with pytest.raises(ValueError):
        utc_datetime(-1)
    with pytest.raises(EncodeError, match="not a whole second"):
        unix_seconds(JAN1 + timedelta(microseconds=1))
    with pytest.raises(EncodeError, match="before 1970"):
        unix_seconds(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))


def test_enums() -> None:
    assert [int(c) for c in CardType] == [0, 1, 2, 3, 4]
    assert int(CardType.ANY) == 0
    assert int(CardType.QR_WALLET) == 4
    assert [int(c) for c in Capability] == [1, 2, 4, 8, 16]
    assert [int(t) for t in Tag] == [*range(1, 12), *range(0x10, 0x17), *range(0x20, 0x24)]


# --- hypothesis -------------------------------------------------------------------------------

ASCII = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=40)


def value_for(tag: int) -> st.SearchStrategy[bytes]:
    if tag in (Tag.MODEL, Tag.SERIAL, Tag.FIRMWARE):
        return ASCII.map(lambda s: s.encode("ascii"))
    if tag in {int(t) for t in Tag}:
        size: int = VALUE_FORMATS[Tag(tag)].sizeof()
        return st.binary(min_size=size, max_size=size)
    return st.binary(max_size=255)


@st.composite
def item_lists(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    tags = draw(st.lists(st.integers(0, 255), unique=True, max_size=12))
    return [(tag, draw(value_for(tag))) for tag in tags]


@given(item_lists())
def test_random_items_round_trip(items: list[tuple[int, bytes]]) -> None:
    raw = encode_tlv(items)
    assert list(decode_tlv(raw).items()) == items
    assert len(raw) == sum(2 + len(v) for _, v in items)


@given(st.binary(max_size=300))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    try:
        items = decode_tlv(data)
    except TLVError as err:
        assert err.offset is not None
        assert 0 <= err.offset < len(data)
        return
    assert encode_tlv(items) == data  # whatever decodes is canonical


@given(item_lists().filter(bool), st.data())
def test_truncations_are_errors_or_shorter_lists(
    items: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    raw = encode_tlv(items)
    n = data.draw(st.integers(0, len(raw) - 1))
    try:
        got = decode_tlv(raw[:n])
    except TLVError as err:
        assert err.offset is not None
        return
    assert list(got.items()) == items[: len(got)]


@given(item_lists().filter(bool), st.data())
def test_single_byte_mutations(items: list[tuple[int, bytes]], data: st.DataObject) -> None:
    raw = bytearray(encode_tlv(items))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    readers = (
        decode_tlv,
        SignOnInfo.from_tlv,
        SaleRequest.from_tlv,
        SaleResult.from_tlv,
        HealthInfo.from_tlv,
        KeyVersions.from_tlv,
        KeyChange.from_tlv,
    )
    for reader in readers:
        with contextlib.suppress(TLVError):
            reader(bytes(raw))


def test_every_single_byte_mutation_of_sign_on() -> None:
    for i in range(len(SIGN_ON)):
        for x in range(1, 256):
            raw = bytearray(SIGN_ON)
            raw[i] ^= x
            with contextlib.suppress(TLVError):
                SignOnInfo.from_tlv(bytes(raw))


sign_ons = st.builds(
    SignOnInfo,
    model=ASCII,
    serial=ASCII,
    firmware=ASCII,
    active_version=st.integers(0, 2**32 - 1),
    pending_version=st.integers(0, 2**32 - 1),
    partial=st.builds(
        PartialDownload, version=st.integers(0, 2**32 - 1), next_block=st.integers(0, 0xFFFF)
    ),
    capabilities=st.integers(0, 0xFFFF).map(Capability),
    pending_effective=st.integers(0, 253_402_300_799).map(utc_datetime),
    mcc=st.integers(0, 9999),
)


@given(sign_ons)
def test_random_sign_on_round_trip(info: SignOnInfo) -> None:
    assert SignOnInfo.from_tlv(info.to_tlv()) == info


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1))
def test_random_sale_result_round_trip(version: int, net: int) -> None:
    result = SaleResult(version, net)
    assert SaleResult.from_tlv(result.to_tlv()) == result
