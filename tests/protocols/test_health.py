"""Health TLV tags 0x10-0x16 (an addition to v1): golden bytes, strict decoding with tag and
offset, v1 compatibility, property tests."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import EncodeError, TLVError
from protocols.health import (
    HEALTH_TAGS,
    Battery,
    CardReads,
    HealthInfo,
    PaperState,
    Printer,
    RebootReason,
)
from protocols.tlv import SignOnInfo, Tag, decode_tlv
from tests.protocols.catalog import HEALTH_TLV, SIGN_ON_TLV, SIGN_ON_V2_TLV

GOLDEN = HealthInfo(
    card_reads=CardReads(chip=120, contactless=300, magstripe=4),
    uptime=3600,
    last_reboot=RebootReason.POWER_LOSS,
    free_storage=2**20,
    battery=Battery(level=80, health=97, cycles=41),
    printer=Printer(PaperState.LOW, lines=12_000),
    tampered=True,
    tampered_at=datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC),
)


def test_golden() -> None:
    assert datetime.fromtimestamp(1_790_000_000, UTC) == GOLDEN.tampered_at
    assert GOLDEN.to_tlv() == HEALTH_TLV
    assert HealthInfo.from_tlv(HEALTH_TLV) == GOLDEN


def test_sizes_on_the_wire() -> None:
    # battery 2+6, printer 2+5, reads 2+12, tamper 2+9, uptime 2+4, reason 2+1, storage 2+8
    assert len(HEALTH_TLV) == 8 + 7 + 14 + 11 + 6 + 3 + 10


def test_battery_and_printer_are_optional() -> None:
    bare = HealthInfo(CardReads(0, 0, 0), uptime=0, last_reboot=0, free_storage=0)
    raw = bare.to_tlv()
    assert set(decode_tlv(raw)) == set(HEALTH_TAGS) - {Tag.BATTERY, Tag.PRINTER}
    assert HealthInfo.from_tlv(raw) == bare
    assert bare.last_reboot is RebootReason.UNKNOWN
    assert (bare.battery, bare.printer, bare.tampered, bare.tampered_at) == (
        None,
        None,
        False,
        None,
    )


def test_tampered_at_an_unknown_time() -> None:
    info = HealthInfo(CardReads(0, 0, 0), 0, RebootReason.TAMPER, 0, tampered=True)
    raw = info.to_tlv()
    assert decode_tlv(raw)[Tag.TAMPER] == b"\x01" + bytes(8)
    assert HealthInfo.from_tlv(raw) == info


def test_sign_on_with_health_still_reads_as_v1() -> None:
    v1 = SignOnInfo.from_tlv(SIGN_ON_TLV)
    assert SignOnInfo.from_tlv(SIGN_ON_V2_TLV) == v1
    assert HealthInfo.from_tlv(SIGN_ON_V2_TLV) == GOLDEN
    assert HealthInfo.from_tlv_optional(SIGN_ON_TLV) is None  # a v1 terminal


def test_order_and_unknown_tags_do_not_matter() -> None:
    items = list(decode_tlv(HEALTH_TLV).items())
    shuffled = [*reversed(items), (0x7E, b"future")]
    raw = b"".join(bytes([t, len(v)]) + v for t, v in shuffled)
    assert HealthInfo.from_tlv(raw) == GOLDEN


def _replace(tag: int, value: bytes) -> tuple[bytes, int]:
    """HEALTH_TLV with ``tag``'s value replaced; and the offset of that item."""
    out, offset = b"", -1
    for t, v in decode_tlv(HEALTH_TLV).items():
        if t == tag:
            offset = len(out)
        item = value if t == tag else v
        out += bytes([t, len(item)]) + item
    return out, offset


@pytest.mark.parametrize(
    ("tag", "value", "words"),
    [
        (0x10, bytes([101, 97]) + bytes(4), "charge level 101 is not 0..100"),
        (0x10, bytes([80, 255]) + bytes(4), "capacity 255 is not 0..100"),
        (0x11, bytes([3]) + bytes(4), "paper state 3 is not 0..2"),
        (0x13, bytes([2]) + bytes(8), "TAMPER state 2 is not 0 (intact) or 1"),
        (0x13, bytes([0]) + (5).to_bytes(8, "big"), "intact but says it tripped at 5"),
        (0x13, bytes([1]) + (2**63).to_bytes(8, "big"), "beyond 9999"),
        (0x15, bytes([7]), "REBOOT_REASON 7 is not 0..6"),
        (0x12, bytes(11), "CARD_READS value is 11 bytes, expected 12 (3 × u32)"),
        (0x10, bytes(7), "BATTERY value is 7 bytes, expected 6 (u8 + u8 + u32)"),
        (0x16, bytes(4), "FREE_STORAGE value is 4 bytes, expected 8 (u64)"),
    ],
)
def test_bad_values_name_tag_and_offset(tag: int, value: bytes, words: str) -> None:
    raw, offset = _replace(tag, value)
    with pytest.raises(TLVError) as info:
        HealthInfo.from_tlv(raw)
    assert info.value.field == f"62 tag 0x{tag:02X}"
    assert info.value.offset == offset
    assert words in str(info.value)


@pytest.mark.parametrize("tag", [0x12, 0x13, 0x14, 0x15, 0x16])
def test_required_tags(tag: int) -> None:
    raw = b"".join(bytes([t, len(v)]) + v for t, v in decode_tlv(HEALTH_TLV).items() if t != tag)
    with pytest.raises(TLVError, match=f"tag 0x{tag:02X}\\) is missing"):
        HealthInfo.from_tlv(raw)
    with pytest.raises(TLVError):  # some health present: all of it must be right
        HealthInfo.from_tlv_optional(raw)


def test_every_truncation_is_a_typed_error_or_a_missing_tag() -> None:
    for cut in range(len(HEALTH_TLV)):
        with pytest.raises(TLVError) as info:
            HealthInfo.from_tlv(HEALTH_TLV[:cut])
        assert info.value.field is not None


def test_every_single_byte_mutation_gives_only_typed_errors() -> None:
    for i in range(len(HEALTH_TLV)):
        for x in (0x01, 0x80, 0xFF):
            raw = bytearray(HEALTH_TLV)
            raw[i] ^= x
            with contextlib.suppress(TLVError):
                HealthInfo.from_tlv(bytes(raw))


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Battery(101, 100, 0), "charge level 101"),
        (lambda: Battery(100, -1, 0), "does not fit u8"),
        (lambda: Battery(100, 100, 2**32), "does not fit u32"),
        (lambda: Printer(3, 0), "paper state 3"),  # type: ignore[arg-type]
        (lambda: CardReads(0, -1, 0), "does not fit u32"),
        (lambda: HealthInfo(CardReads(0, 0, 0), 2**32, 1, 0), "does not fit u32"),
        (lambda: HealthInfo(CardReads(0, 0, 0), 0, 9, 0), "reboot reason 9"),
        (lambda: HealthInfo(CardReads(0, 0, 0), 0, 1, 2**64), "does not fit u64"),
        (
            lambda: HealthInfo(CardReads(0, 0, 0), 0, 1, 0, tampered_at=datetime.now(UTC)),
            "tampered is False",
        ),
        (
            lambda: HealthInfo(
                CardReads(0, 0, 0), 0, 1, 0, tampered=True, tampered_at=datetime(2026, 1, 1)
            ),
            "naive datetime",
        ),
        (lambda: HealthInfo((1, 2, 3), 0, 1, 0), "must be a CardReads"),  # type: ignore[arg-type]
    ],
)
def test_encode_errors(build: object, words: str) -> None:
    with pytest.raises(EncodeError, match=words):
        build()  # type: ignore[operator]


u32 = st.integers(0, 2**32 - 1)
healths = st.builds(
    HealthInfo,
    card_reads=st.builds(CardReads, u32, u32, u32),
    uptime=u32,
    last_reboot=st.sampled_from(RebootReason),
    free_storage=st.integers(0, 2**64 - 1),
    battery=st.none() | st.builds(Battery, st.integers(0, 100), st.integers(0, 100), u32),
    printer=st.none() | st.builds(Printer, st.sampled_from(PaperState), u32),
    tampered=st.just(False),
)
tampered = st.builds(
    lambda h, at: HealthInfo(
        h.card_reads, h.uptime, h.last_reboot, h.free_storage, h.battery, h.printer, True, at
    ),
    healths,
    st.none() | st.integers(1, 253_402_300_799).map(lambda s: datetime.fromtimestamp(s, UTC)),
)


@given(healths | tampered)
def test_random_health_round_trip(info: HealthInfo) -> None:
    assert HealthInfo.from_tlv(info.to_tlv()) == info


@given(st.binary(max_size=120))
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    with contextlib.suppress(TLVError):
        HealthInfo.from_tlv(data)
    with contextlib.suppress(TLVError):
        HealthInfo.from_tlv_optional(data)


@given(healths | tampered, st.data())
def test_mutations_of_random_health_give_only_typed_errors(
    info: HealthInfo, data: st.DataObject
) -> None:
    raw = bytearray(info.to_tlv())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(TLVError):
        HealthInfo.from_tlv(bytes(raw))
