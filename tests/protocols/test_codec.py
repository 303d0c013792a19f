"""The ISO 8583 codec: golden vectors, every catalog message, interop with pyiso8583,
truncation at every byte, and property tests."""

from __future__ import annotations

import copy

import construct as cs
import iso8583
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iso8583.specs import default as _pyiso_default

from protocols import codec
from protocols.codec import COMPILED, MESSAGE, Message, decode, encode, field_construct, mac_input
from protocols.errors import DecodeError, EncodeError, ProtocolError
from protocols.spec import SPEC
from tests.helpers import common
from tests.protocols.catalog import CATALOG

# pyiso8583's default spec with 62 and 63 switched to binary: the wire page's layout.
PYISO_SPEC = copy.deepcopy(_pyiso_default)
PYISO_SPEC["62"]["data_enc"] = "b"
PYISO_SPEC["63"]["data_enc"] = "b"


def to_pyiso(msg: Message) -> dict[str, str]:
    out = {"t": msg.mti}
    for n, v in msg.fields.items():
        out[str(n)] = v.hex().upper() if isinstance(v, bytes) else v
    return out


def from_pyiso(doc: dict[str, str]) -> Message:
    fields: dict[int, str | bytes] = {}
    for k, v in doc.items():
        if k in ("t", "p", "1", "h"):
            continue
        n = int(k)
        fields[n] = bytes.fromhex(v) if SPEC[n].binary else v
    return Message(doc["t"], fields)


# --- golden vectors --------------------------------------------------------------------


def test_golden_sign_on_request() -> None:
    data = encode(CATALOG["0800/001 sign-on"])
    assert data == (
        b"0800"
        + bytes.fromhex("0020000000800010")  # bits 11, 41, 60
        + b"000001"
        + b"TERM0001"
        + b"011"
        + b"00000000001"
    )


def test_golden_sale_request() -> None:
    data = encode(CATALOG["0200 sale"])
    assert data == (
        b"0200"
        + bytes.fromhex("3020040000808004")  # bits 3 4 11 22 41 49 62
        + b"000000"
        + b"000000010000"
        + b"000006"
        + b"051"
        + b"TERM0001"
        + b"156"
        + b"003\x01\x01\x02"
    )


def test_golden_block_request_size() -> None:
    # MTI 4 + bitmap 8 + 11:6 + 41:8 + 60:3+11 + 61:3+16 + 62:3+900 + 64:8
    data = encode(CATALOG["0800/360 block"])
    assert len(data) == 4 + 8 + 6 + 8 + 14 + 19 + 903 + 8
    assert data[4:12] == bytes.fromhex("002000000080001d")  # 11, 41, 60, 61, 62, 64


def test_secondary_bitmap() -> None:
    msg = Message("0800", {11: "000001", 70: "301"})
    data = encode(msg)
    assert data[4:20] == bytes.fromhex("80200000000000000400000000000000")
    assert decode(data) == msg


# --- constructs: parse, build and size in one line ---------------------------------------


@pytest.mark.parametrize(
    ("number", "data", "obj", "size"),
    [
        (3, b"000000", "000000", 6),
        (4, b"000000010000", "000000010000", 12),
        (28, b"D00000061", "D00000061", 9),
        (39, b"A0", "A0", 2),
        (41, b"TERM0001", "TERM0001", 8),
        (42, b"MERCHANT0000001", "MERCHANT0000001", 15),
        (64, b"\x01\x02\x03\x04\x05\x06\x07\x08", b"\x01\x02\x03\x04\x05\x06\x07\x08", 8),
        (2, b"164111111111111111", "4111111111111111", -1),
        (60, b"01100000000001", "00000000001", -1),
        (61, b"0160000000700010002", "0000000700010002", -1),
        (62, b"003\x01\x01\x02", b"\x01\x01\x02", -1),
        (62, b"000", b"", -1),
    ],
)
def test_field_constructs(number: int, data: bytes, obj: object, size: int) -> None:
    common(field_construct(SPEC[number]), data, obj, size)
    common(field_construct(SPEC[number]).compile(), data, obj, size)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_message_construct_and_compiled_agree(name: str) -> None:
    msg = CATALOG[name]
    data = encode(msg)
    obj = cs.Container(mti=msg.mti, fields=msg.fields)
    common(MESSAGE, data, obj, -1)
    common(COMPILED, data, obj, -1)


# --- catalog round trips and interop ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_round_trip(name: str) -> None:
    msg = CATALOG[name]
    assert decode(encode(msg)) == msg


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_interop_ours_to_pyiso8583(name: str) -> None:
    msg = CATALOG[name]
    doc, _ = iso8583.decode(encode(msg), PYISO_SPEC)
    assert from_pyiso(doc) == msg


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_interop_pyiso8583_to_ours(name: str) -> None:
    msg = CATALOG[name]
    raw, _ = iso8583.encode(to_pyiso(msg), PYISO_SPEC)
    assert decode(bytes(raw)) == msg
    assert encode(msg) == bytes(raw)


# --- errors name the field and the byte -------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_truncation_at_every_byte_is_a_typed_error(name: str) -> None:
    data = encode(CATALOG[name])
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data[:cut])
        err = info.value
        assert err.offset is not None and 0 <= err.offset <= cut, (cut, err)
        assert err.field is not None, (cut, err)


def test_truncated_block_names_field_62_and_offset() -> None:
    data = encode(CATALOG["0800/360 block"])
    cut = data[: 4 + 8 + 6 + 8 + 14 + 19 + 3 + 800]  # 100 bytes short in field 62
    with pytest.raises(DecodeError) as info:
        decode(cut)
    assert info.value.field == 62
    assert info.value.offset == 4 + 8 + 6 + 8 + 14 + 19 + 3
    assert "needs 900 bytes, only 800 left" in str(info.value)


@pytest.mark.parametrize(
    ("data", "field", "offset", "words"),
    [
        (b"", "MTI", 0, "MTI needs 4 bytes"),
        (b"08x0" + bytes(8), "MTI", 0, "not 4 ASCII digits"),
        (b"0800\x00\x20", "bitmap", 4, "primary bitmap needs 8 bytes"),
        (b"0800\x80" + bytes(7) + b"\x00", 1, 12, "secondary bitmap"),
        (b"0800" + bytes.fromhex("0020000000000000") + b"00A001", 11, 12, "numeric field"),
        (b"0800" + bytes.fromhex("0000000000800000") + b"TERM\xff001", 41, 16, "not ASCII"),
        (b"0800" + bytes.fromhex("0000000000000010") + b"0x1", 60, 12, "not 3 ASCII digits"),
        (b"0800" + bytes.fromhex("4000000000000000") + b"25" + b"1" * 25, 2, 12, "exceeds the max"),
        (b"0800" + bytes.fromhex("0020000000000000") + b"000001XY", "end", 18, "left over"),
        (b"0800\x80" + bytes(7) + b"\x80" + bytes(7) + bytes(8), 65, 20, "tertiary bitmap"),
    ],
)
def test_decode_errors(data: bytes, field: object, offset: int, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.field == field
    assert info.value.offset == offset
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("msg", "field", "words"),
    [
        (Message("080", {}), "MTI", "4 ASCII digits"),
        (Message("0800", {1: b"x"}), "1", "no such data element"),
        (Message("0800", {129: "x"}), "129", "no such data element"),
        (Message("0800", {11: 1}), 11, "needs str"),  # type: ignore[dict-item]
        (Message("0800", {11: "00001"}), 11, "exactly 6 characters"),
        (Message("0800", {11: "00000a"}), 11, "needs digits"),
        (Message("0800", {41: "TERMÜ001"}), 41, "not ASCII"),
        (Message("0800", {62: "text"}), 62, "needs bytes"),
        (Message("0800", {62: b"x" * 1000}), 62, "the maximum is 999"),
        (Message("0800", {2: "1" * 20}), 2, "the maximum is 19"),
        (Message("0800", {64: b"short"}), 64, "exactly 8 bytes"),
        (Message("0800", {65: bytes(8)}), 65, "tertiary bitmap"),
    ],
)
def test_encode_errors(msg: Message, field: object, words: str) -> None:
    with pytest.raises(EncodeError) as info:
        encode(msg)
    assert info.value.field == field
    assert words in str(info.value)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(DecodeError):
        decode("0800")  # type: ignore[arg-type]


def test_mac_input_covers_up_to_field_63_with_bit_64_set() -> None:
    msg = CATALOG["0800/360 block"]
    data = encode(msg)
    assert mac_input(msg) == data[:-8]
    unsigned = Message(msg.mti, {n: v for n, v in msg.fields.items() if n != 64})
    assert mac_input(unsigned) == data[:-8]
    # with a secondary-bitmap field after 64, the MAC still stops before 64
    wide = Message("0800", {11: "000001", 64: b"\0" * 8, 70: "301"})
    wide_data = encode(wide)
    assert mac_input(wide) == wide_data[: 4 + 16 + 6]


# --- property tests ----------------------------------------------------------------------


def _value(number: int) -> st.SearchStrategy[str | bytes]:
    spec = SPEC[number]
    size = st.just(spec.max_len) if spec.kind == "fixed" else st.integers(0, min(spec.max_len, 120))
    if spec.binary:
        return size.flatmap(lambda n: st.binary(min_size=n, max_size=n))
    alphabet = (
        "0123456789" if spec.content == "n" else st.characters(min_codepoint=32, max_codepoint=126)
    )
    return size.flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))


messages = st.builds(
    Message,
    st.text("0123456789", min_size=4, max_size=4),
    st.sets(st.integers(2, 128).filter(lambda n: n != 65), max_size=12).flatmap(
        lambda ns: st.fixed_dictionaries({n: _value(n) for n in sorted(ns)})
    ),
)


@given(messages)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_messages_round_trip(msg: Message) -> None:
    data = encode(msg)
    assert decode(data) == msg
    # the interpreted construct agrees with the compiled one byte for byte
    parsed = MESSAGE.parse(data)
    assert (parsed.mti, parsed.fields) == (msg.mti, msg.fields)
    assert MESSAGE.build(cs.Container(mti=msg.mti, fields=msg.fields)) == data


@given(messages)
@settings(max_examples=200)
def test_random_messages_interop_with_pyiso8583(msg: Message) -> None:
    data = encode(msg)
    doc, _ = iso8583.decode(data, PYISO_SPEC)
    assert from_pyiso(doc) == msg


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_random_bytes_give_only_typed_errors(data: bytes) -> None:
    try:
        msg = decode(data)
    except DecodeError:
        return
    assert encode(msg) == data  # whatever decodes re-encodes to the same bytes


@given(st.sampled_from(sorted(CATALOG)), st.data())
@settings(max_examples=500)
def test_mutated_catalog_messages_give_only_typed_errors(name: str, data: st.DataObject) -> None:
    raw = bytearray(encode(CATALOG[name]))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(raw))
    except DecodeError as err:
        assert isinstance(err, ProtocolError)


def test_generated_source_is_inspectable() -> None:
    assert "def parse_fieldset" in codec._GEN["SOURCE"]
    assert "def _p62(data, pos, n, base):" in codec._GEN["SOURCE"]
