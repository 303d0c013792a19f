"""The sans-I/O link machine on its own: bytes and times in, bytes and outcomes out."""

from __future__ import annotations

import pytest

from protocols.errors import LinkError
from protocols.framing import ACK, NAK, FrameDecoder, encode_frame
from protocols.linkstate import LinkMachine

ACK_B, NAK_B = bytes((ACK,)), bytes((NAK,))


def frames(data: bytes) -> list[object]:
    return FrameDecoder().feed(data)


def host(**kw: object) -> LinkMachine:
    return LinkMachine(115200, response_check=lambda req, rsp: rsp.startswith(b"R"), **kw)  # type: ignore[arg-type]


def test_request_ack_response() -> None:
    m = host()
    m.start_request(b"Q1", 0.0)
    assert m.take_output() == encode_frame(b"Q1")
    m.receive(ACK_B, 0.01)
    assert m.waiting_for_response and m.response is None
    assert m.deadline == pytest.approx(5.01)
    m.receive(encode_frame(b"R1"), 0.02)
    assert m.response == b"R1" and not m.busy
    assert m.take_output() == ACK_B
    assert m.stats.acks_received == m.stats.acks_sent == 1


def test_nak_and_t1_resend_then_fail_after_four_sends() -> None:
    m = host()
    m.start_request(b"Q", 0.0)
    m.receive(NAK_B, 0.1)  # resend at once
    t1 = m.t1(len(encode_frame(b"Q")))
    m.poll(0.1 + t1 - 0.001)  # not yet
    assert m.stats.frames_sent == 2
    m.poll(0.1 + t1)  # T1: third send
    m.poll(0.1 + 2 * t1)  # fourth
    assert m.error is None and m.stats.frames_sent == 4 and m.stats.resends == 3
    m.poll(0.1 + 3 * t1)
    assert isinstance(m.error, LinkError)
    assert "no ACK for request of 1 bytes after 4 sends" in str(m.error)
    assert not m.busy and m.deadline is None


def test_t2_expiry() -> None:
    m = host(t2=2.0)
    m.start_request(b"Q", 0.0)
    m.receive(ACK_B, 0.0)
    m.poll(1.99)
    assert m.error is None
    m.poll(2.0)
    assert m.error is not None and "no response within T2 = 2.0 s" in str(m.error)


def test_response_instead_of_ack_and_stale_frames() -> None:
    m = host()
    m.start_request(b"Q", 0.0)
    m.take_output()
    m.receive(encode_frame(b"stale") + encode_frame(b"R-good"), 0.1)
    assert m.response == b"R-good"
    assert m.take_output() == ACK_B + ACK_B  # both frames ACKed
    assert m.stats.stale_frames == 1
    m.receive(encode_frame(b"R-again"), 0.2)  # idle: ACKed, counted, not taken
    assert m.response == b"R-good" and m.stats.stale_frames == 2


def test_one_nak_per_burst_and_interbyte_flush() -> None:
    m = host()
    bad = bytearray(encode_frame(b"R1"))
    bad[-1] ^= 0xFF
    m.receive(bytes(bad) + b"\x02\x0a\x0a" + bytes(bad), 0.0)
    assert m.take_output() == NAK_B and m.stats.bad_frames >= 2
    m.receive(b"\x02\x00\x09abc", 1.0)  # truncated: waits for the line to go quiet
    assert m.take_output() == b"" and m.deadline == pytest.approx(1.0 + m.interbyte_timeout)
    m.poll(1.001 + m.interbyte_timeout)
    assert m.take_output() == NAK_B


def test_terminal_answers_once_and_repeats_from_cache() -> None:
    calls: list[bytes] = []
    m = LinkMachine(115200, request_key=lambda b: b)
    m.serve(lambda body: calls.append(body) or b"A" + body)
    m.receive(encode_frame(b"Q1"), 0.0)
    assert m.take_output() == ACK_B + encode_frame(b"AQ1")
    m.receive(encode_frame(b"Q1"), 0.1)  # resent while our answer waits for its ACK
    assert m.take_output() == ACK_B and m.stats.duplicates == 1
    m.receive(ACK_B, 0.2)
    m.receive(encode_frame(b"Q1"), 0.3)  # a repeat after delivery: from the cache
    assert m.take_output() == ACK_B + encode_frame(b"AQ1")
    m.receive(encode_frame(b"Q2"), 0.4)  # new request = implicit ACK of the last answer
    assert m.take_output() == ACK_B + encode_frame(b"AQ2")
    assert calls == [b"Q1", b"Q2"] and m.handled == 3


def test_terminal_gives_up_an_unacked_answer_and_goes_on() -> None:
    m = LinkMachine(115200, t1_margin=0.1)
    m.serve(lambda body: b"A")
    m.receive(encode_frame(b"Q"), 0.0)
    now = 0.0
    for _ in range(4):
        now += 1.0
        m.poll(now)
    assert m.given_up == 1 and m.stats.frames_sent == 4 and not m.busy
    assert m.error is not None and "no ACK for response" in str(m.error)


def test_deferred_handler_is_dispatched_once() -> None:
    dispatched: list[bytes] = []
    m = LinkMachine(115200, request_key=lambda b: b)
    m.serve_deferred(dispatched.append)
    m.receive(encode_frame(b"Q1"), 0.0)
    assert m.take_output() == ACK_B and dispatched == [b"Q1"]
    assert m.busy and m.deadline is None  # no timer while the handler works
    m.receive(encode_frame(b"Q1"), 0.6)  # the host's T1 resend: ACK again, not again handed
    m.receive(encode_frame(b"Q2"), 0.7)  # a new request waits for the one in hand
    assert m.take_output() == ACK_B + ACK_B and dispatched == [b"Q1"]
    m.respond(b"A1", 0.8)
    assert m.take_output() == encode_frame(b"A1") and dispatched == [b"Q1", b"Q2"]
    m.respond(b"A2", 0.9)  # Q2's arrival was the implicit ACK of A1
    assert m.take_output() == encode_frame(b"A2") and m.handled == 2
    with pytest.raises(LinkError, match="without a request"):
        m.respond(b"A3", 1.0)
