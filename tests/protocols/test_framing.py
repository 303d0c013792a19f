"""Frame encoding and the incremental frame decoder (wire page, section 1)."""

from __future__ import annotations

import functools
import operator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import EncodeError, FrameError
from protocols.framing import (
    ACK,
    MAX_BODY,
    NAK,
    BadFrame,
    Control,
    Event,
    Frame,
    FrameDecoder,
    encode_frame,
    lrc,
)

pytestmark = pytest.mark.timeout(60)


def xor_all(data: bytes) -> int:
    return functools.reduce(operator.xor, data, 0)


def feed_in_chunks(data: bytes, sizes: list[int]) -> tuple[list[Event], FrameDecoder]:
    """Feed ``data`` cut at the given chunk sizes (cycled); return all events."""
    dec = FrameDecoder()
    events: list[Event] = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        events += dec.feed(data[pos : pos + size])
        pos += size
        i += 1
    return events, dec


# -- golden vectors ----------------------------------------------------------------------


def test_golden_short_frame() -> None:
    # LRC = 00 ^ 04 ^ '0' ^ '8' ^ '0' ^ '0' ^ 03 = 0x0f
    assert encode_frame(b"0800") == bytes.fromhex("02 0004 30383030 03 0f")


def test_golden_251_byte_body_matches_wire_page_shape() -> None:
    # wire page: BODY of 251 bytes -> 02 02 51 <251 bytes> 03 LRC
    # 251 x 0x41 XORs to 0x41; LRC = 02 ^ 51 ^ 41 ^ 03 = 0x11
    body = b"A" * 251
    golden = bytes.fromhex("020251") + body + bytes.fromhex("0311")
    assert encode_frame(body) == golden
    assert FrameDecoder().feed(golden) == [Frame(body)]


def test_lrc_covers_len_body_and_etx_but_not_stx() -> None:
    body = bytes(range(256)) * 3 + b"\x02\x03"
    frame = encode_frame(body)
    assert frame[-1] == xor_all(frame[1:-1])
    assert lrc(frame[1:-1]) == frame[-1]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 255, 256, 257, 1000, 4096, 9999])
def test_lrc_matches_reference_at_power_of_two_boundaries(n: int) -> None:
    data = bytes((i * 37 + 11) & 0xFF for i in range(n))
    assert lrc(data) == xor_all(data)


def test_max_body_and_bcd_length() -> None:
    frame = encode_frame(b"x" * MAX_BODY)
    assert frame[1:3] == b"\x99\x99"
    assert FrameDecoder().feed(frame) == [Frame(b"x" * MAX_BODY)]
    assert encode_frame(b"y" * 1234)[1:3] == b"\x12\x34"


@pytest.mark.parametrize("size", [0, MAX_BODY + 1, 20_000])
def test_encode_rejects_bad_sizes(size: int) -> None:
    with pytest.raises(EncodeError) as info:
        encode_frame(b"z" * size)
    assert info.value.field == "BODY"
    assert "1..9999" in str(info.value)


# -- decoding ----------------------------------------------------------------------------

STREAM = (
    b"\x00noise\xff"
    + encode_frame(b"first")
    + b"\x06"
    + b"junk\x03\x03"
    + encode_frame(b"\x02\x03\x06\x15 body with control bytes inside")
    + b"\x15"
    + encode_frame(b"last" * 100)
)
EXPECTED: list[Event] = [
    Frame(b"first"),
    Control(ACK),
    Frame(b"\x02\x03\x06\x15 body with control bytes inside"),
    Control(NAK),
    Frame(b"last" * 100),
]


def test_stream_all_at_once() -> None:
    dec = FrameDecoder()
    assert dec.feed(STREAM) == EXPECTED
    assert dec.pending == 0
    assert dec.skipped == len(b"\x00noise\xff") + len(b"junk\x03\x03")


def test_stream_byte_by_byte() -> None:
    events, dec = feed_in_chunks(STREAM, [1])
    assert events == EXPECTED
    assert dec.skipped == 13


@pytest.mark.parametrize("size", range(2, 40))
def test_stream_every_chunk_size(size: int) -> None:
    assert feed_in_chunks(STREAM, [size])[0] == EXPECTED


def test_stream_cut_at_every_position() -> None:
    for cut in range(len(STREAM) + 1):
        dec = FrameDecoder()
        assert dec.feed(STREAM[:cut]) + dec.feed(STREAM[cut:]) == EXPECTED, cut


def test_control_bytes_are_events_only_outside_frames() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x06\x15\x06") == [Control(ACK), Control(NAK), Control(ACK)]
    assert dec.feed(encode_frame(b"\x06\x15")) == [Frame(b"\x06\x15")]
    assert Control(ACK).is_ack
    assert not Control(NAK).is_ack


def test_garbage_before_and_between_frames_is_skipped_and_counted() -> None:
    garbage = bytes(b for b in range(256) if b not in (0x02, 0x06, 0x15))
    stream = garbage + encode_frame(b"a") + garbage + encode_frame(b"b")
    dec = FrameDecoder()
    assert dec.feed(stream) == [Frame(b"a"), Frame(b"b")]
    assert dec.skipped == 2 * len(garbage)


def test_bad_lrc_gives_bad_frame_then_next_frame() -> None:
    good = encode_frame(b"hello world")
    damaged = good[:-1] + bytes([good[-1] ^ 0x40])
    events = FrameDecoder().feed(b"xx" + damaged + encode_frame(b"next"))
    assert events == [
        BadFrame("LRC", 2, f"LRC is 0x{good[-1]:02x}, frame says 0x{good[-1] ^ 0x40:02x}"),
        Frame(b"next"),
    ]
    error = events[0].error  # type: ignore[union-attr]
    assert isinstance(error, FrameError)
    assert (error.field, error.offset) == ("LRC", 2)


def test_corrupted_body_byte_gives_bad_lrc() -> None:
    frame = bytearray(encode_frame(b"0800" + bytes(range(64))))
    frame[10] ^= 0x01
    (event,) = FrameDecoder().feed(bytes(frame))
    assert isinstance(event, BadFrame)
    assert event.field == "LRC"


@pytest.mark.parametrize(
    "header", [b"\x0a\x00", b"\x00\x0a", b"\xa0\x01", b"\x00\xf0", b"\xff\xff"]
)
def test_bad_bcd_nibble_gives_bad_frame_and_resync(header: bytes) -> None:
    stream = b"\x02" + header + encode_frame(b"real")
    events = FrameDecoder().feed(stream)
    assert events == [
        BadFrame("LEN", 0, f"length bytes {header.hex()} are not BCD"),
        Frame(b"real"),
    ]


def test_zero_length_is_a_bad_frame() -> None:
    events = FrameDecoder().feed(b"\x02\x00\x00\x03\x03" + encode_frame(b"ok"))
    assert events[0] == BadFrame("LEN", 0, "length 0000: a frame carries 1..9999 bytes")
    assert events[1:] == [Frame(b"ok")]


def test_missing_etx_gives_bad_frame() -> None:
    frame = bytearray(encode_frame(b"abcdef"))
    frame[-2] = 0x04  # where ETX should be
    events = FrameDecoder().feed(bytes(frame))
    assert events[0] == BadFrame("ETX", 0, "byte 9 of the frame is 0x04, not ETX")
    # the rescan from the byte after STX finds no frame in what is left
    assert not any(isinstance(e, Frame) for e in events)


def test_resync_after_bogus_length_finds_the_frame_it_swallowed() -> None:
    # a stray STX + valid BCD claims 40 bytes; the real frame sits inside that span
    real = encode_frame(b"inside")
    stream = b"\x02\x00\x40" + real + b"." * 60
    events, dec = feed_in_chunks(stream, [1])
    assert events == [BadFrame("ETX", 0, "byte 43 of the frame is 0x2e, not ETX"), Frame(b"inside")]
    assert FrameDecoder().feed(stream) == events
    assert dec.pending == 0


def test_truncated_frame_is_held_pending_then_completed() -> None:
    frame = encode_frame(b"0200 sale")
    dec = FrameDecoder()
    assert dec.feed(frame[:-1]) == []
    assert dec.pending == len(frame) - 1
    assert dec.feed(frame[-1:]) == [Frame(b"0200 sale")]
    assert dec.pending == 0


def test_flush_reports_truncated_frame_as_missing_etx() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"\x02\x00") == []
    assert dec.flush() == [
        BadFrame("ETX", 0, "truncated frame: 2 of at least 3 bytes before the line went idle")
    ]
    assert dec.pending == 0
    assert dec.flush() == []


def test_reset_forgets_pending_bytes_but_keeps_offsets() -> None:
    dec = FrameDecoder()
    dec.feed(b"ab\x02\x00\x05ab")
    assert dec.pending == 5
    dec.reset()
    assert dec.pending == 0
    assert dec.feed(b"\x02\xaa\x00") == [BadFrame("LEN", 7, "length bytes aa00 are not BCD")]


def test_buffer_is_bounded_by_one_maximum_frame() -> None:
    dec = FrameDecoder()
    dec.feed(b"\x02\x99\x99")  # claims 9999 bytes: wait for them
    for _ in range(30):
        dec.feed(b"\x01" * 1000)
        assert dec.pending <= MAX_BODY + 5
    # the bogus frame was abandoned once 10004 bytes were there, noise skipped since
    assert dec.pending == 0


def test_decode_64k_stream_of_900_byte_frames_in_one_call() -> None:
    bodies = [bytes([i]) * 900 for i in range(73)]
    stream = b"".join(encode_frame(b) for b in bodies)
    assert len(stream) > 65_536
    assert FrameDecoder().feed(stream) == [Frame(b) for b in bodies]


# -- properties --------------------------------------------------------------------------

bodies_st = st.lists(st.binary(min_size=1, max_size=1200), min_size=1, max_size=6)
chunks_st = st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20)
prop_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@prop_settings
@given(bodies=bodies_st, sizes=chunks_st)
def test_property_round_trip_under_random_chunking(bodies: list[bytes], sizes: list[int]) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    events, dec = feed_in_chunks(stream, sizes)
    assert events == [Frame(b) for b in bodies]
    assert dec.pending == 0
    assert dec.skipped == 0


@prop_settings
@given(data=st.binary(max_size=3000), sizes=chunks_st)
def test_property_random_bytes_never_raise(data: bytes, sizes: list[int]) -> None:
    events, dec = feed_in_chunks(data, sizes)
    assert all(isinstance(e, Frame | BadFrame | Control) for e in events)
    assert dec.pending <= MAX_BODY + 5
    assert feed_in_chunks(data, [len(data) or 1])[0] == events  # chunking does not matter
    dec.flush()
    assert dec.pending == 0


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    bodies = draw(bodies_st)
    noise = st.binary(max_size=8)
    stream = bytearray()
    for body in bodies:
        stream += draw(noise) + encode_frame(body)
    for _ in range(draw(st.integers(0, 6))):
        if not stream:
            break
        pos = draw(st.integers(0, len(stream) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "stx"]))
        if kind == "flip":
            stream[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            stream[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del stream[pos : pos + draw(st.integers(1, 4))]
        else:
            stream[pos:pos] = b"\x02"
    return bytes(stream)


@prop_settings
@given(stream=mutated_streams(), sizes=chunks_st)
def test_property_mutated_streams_never_raise_and_ignore_chunking(
    stream: bytes, sizes: list[int]
) -> None:
    events, dec = feed_in_chunks(stream, sizes)
    whole = FrameDecoder()
    assert whole.feed(stream) == events
    assert whole.skipped == dec.skipped
    for event in events:
        if isinstance(event, BadFrame):
            assert event.field in ("LEN", "ETX", "LRC")
            assert 0 <= event.offset < len(stream)
            assert stream[event.offset] == 0x02
    assert dec.flush() == whole.flush()
