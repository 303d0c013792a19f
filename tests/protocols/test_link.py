"""The link layer over real ptys, real TCP and pyserial's loop:// (no serial mocks).

A "raw peer" is a plain pyserial port plus a FrameDecoder: it plays the other side byte
by byte so each rule of the wire page (section 1) can be provoked on purpose.
"""

from __future__ import annotations

import select
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from time import monotonic

import pytest
import serial

from protocols.errors import LinkError
from protocols.framing import ACK, NAK, Control, Event, Frame, FrameDecoder, encode_frame
from protocols.link import Link, default_request_key, default_response_check
from protocols.pty import PtyPair

pytestmark = pytest.mark.timeout(30)

BAUD = 115200
T1_MARGIN = 0.5  # the spec's value: no spurious resends on a loaded test machine
FAST_T1 = 0.15  # for the tests that wait for T1 to expire
T2 = 1.0  # spec: 5 s


def key(body: bytes) -> bytes:
    """Test request key: the first 10 bytes stand for (MTI, STAN)."""
    return body[:10]


def accept_all(request: bytes, response: bytes) -> bool:
    """Test response check: any frame answers (keeps the tests off the codec)."""
    return True


def make_link(url: str, **kw: object) -> Link:
    opts: dict[str, object] = {
        "t1_margin": T1_MARGIN,
        "t2": T2,
        "request_key": key,
        "response_check": accept_all,
    }
    opts.update(kw)
    return Link(url, BAUD, **opts)  # type: ignore[arg-type]


class RawPeer:
    """The far end of the line, driven by hand."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, BAUD, timeout=0.01)
        self.decoder = FrameDecoder()
        self.queue: deque[Event] = deque()

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def send_frame(self, body: bytes) -> None:
        self.send(encode_frame(body))

    def next_event(self, timeout: float = 5.0) -> Event:
        deadline = monotonic() + timeout
        while not self.queue:
            if monotonic() > deadline:
                raise AssertionError(f"peer: nothing received within {timeout} s")
            self.queue.extend(self.decoder.feed(self.port.read(self.port.in_waiting or 1)))
        return self.queue.popleft()

    def expect_frame(self) -> bytes:
        event = self.next_event()
        assert isinstance(event, Frame), event
        return event.body

    def expect_control(self, code: int) -> None:
        assert self.next_event() == Control(code)

    def events_until_quiet(self, quiet: float = 0.3) -> list[Event]:
        """Everything that arrives until the line has been silent for ``quiet`` seconds."""
        events = list(self.queue)
        self.queue.clear()
        last = monotonic()
        while monotonic() - last < quiet:
            data = self.port.read(self.port.in_waiting or 1)
            if data:
                last = monotonic()
                events += self.decoder.feed(data)
        return events

    def close(self) -> None:
        self.port.close()


class Handler:
    """A terminal handler that records its calls."""

    def __init__(self, response: Callable[[bytes], bytes | None] | None = None) -> None:
        self.calls: list[bytes] = []
        self._response = response or (lambda body: b"RESP" + body[:10])

    def __call__(self, body: bytes) -> bytes | None:
        self.calls.append(body)
        return self._response(body)


@contextmanager
def serving(link: Link, handler: Callable[[bytes], bytes | None]) -> Iterator[None]:
    """Run ``link.serve_forever(handler)`` in a thread for the duration of the block."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            link.serve_forever(handler, stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="responder", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "responder did not stop"
    assert not errors, errors


@contextmanager
def in_background(fn: Callable[[], bytes]) -> Iterator[Future[bytes]]:
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(fn)


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as p:
        yield p


@pytest.fixture
def host(pair: PtyPair) -> Iterator[Link]:
    with make_link(pair.a) as link:
        yield link


@pytest.fixture
def terminal(pair: PtyPair) -> Iterator[Link]:
    with make_link(pair.b) as link:
        yield link


@pytest.fixture
def fast_host(pair: PtyPair) -> Iterator[Link]:
    with make_link(pair.a, t1_margin=FAST_T1) as link:
        yield link


@pytest.fixture
def fast_terminal(pair: PtyPair) -> Iterator[Link]:
    with make_link(pair.b, t1_margin=FAST_T1) as link:
        yield link


@pytest.fixture
def peer(pair: PtyPair) -> Iterator[RawPeer]:
    """A raw peer on end b (use it instead of ``terminal``)."""
    p = RawPeer(pair.b)
    yield p
    p.close()


def request_id(n: int) -> bytes:
    return f"0800{n:06d}".encode()


# -- happy path --------------------------------------------------------------------------


def test_request_response_over_pty_pair(host: Link, terminal: Link) -> None:
    handler = Handler()
    with serving(terminal, handler):
        assert host.request(b"0800000001 echo") == b"RESP0800000001"
    assert handler.calls == [b"0800000001 echo"]
    assert host.stats.frames_sent == 1
    assert host.stats.acks_received == 1
    assert host.stats.acks_sent == 1
    assert host.stats.resends == 0
    assert terminal.stats.frames_received == 1
    assert terminal.stats.frames_sent == 1


def test_many_requests_of_every_size(host: Link, terminal: Link) -> None:
    handler = Handler(lambda body: body[::-1])
    sizes = [1, 2, 10, 251, 986, 4096, 9999]
    with serving(terminal, handler):
        for n, size in enumerate(sizes):
            body = (request_id(n) + bytes(range(256)) * 40)[:size]
            assert host.request(body) == body[::-1]
    assert len(handler.calls) == len(sizes)
    wire = sum(len(encode_frame((request_id(0) + bytes(10000))[:s])) for s in sizes)
    # every request byte + one ACK per response; nothing resent
    assert host.stats.bytes_sent == wire + len(sizes)
    assert terminal.stats.bytes_received == host.stats.bytes_sent
    assert host.stats.resends == terminal.stats.resends == 0


def test_handler_returning_none_sends_no_response(pair: PtyPair, terminal: Link) -> None:
    with (
        make_link(pair.a, t2=0.2) as host,
        serving(terminal, Handler(lambda body: None)),
        pytest.raises(LinkError, match="T2"),
    ):
        host.request(b"0800000001")


def test_loop_url_echo() -> None:
    # loop:// returns what we send: our own frame comes back as the "response"
    with make_link("loop://") as link:
        assert link.request(b"0800 ping") == b"0800 ping"
        assert link.stats.frames_received == 1
        assert link.stats.acks_sent == 1


def test_already_open_port_is_not_closed_by_link(pair: PtyPair, terminal: Link) -> None:
    port = serial.serial_for_url(pair.a, BAUD, timeout=0.5)
    try:
        with (
            Link(port, BAUD, t1_margin=T1_MARGIN, response_check=accept_all) as link,
            serving(terminal, Handler()),
        ):
            assert link.request(b"0800000009") == b"RESP0800000009"
            assert link.name == pair.a
        assert link.closed
        assert port.is_open
    finally:
        port.close()


def test_close_is_idempotent_and_closed_link_refuses(pair: PtyPair) -> None:
    link = make_link(pair.a)
    link.close()
    link.close()
    with pytest.raises(LinkError, match=f"{pair.a}: link is closed"):
        link.request(b"0800")


# -- resends, NAK, T1, T2 ----------------------------------------------------------------


def test_nak_then_resend_succeeds(host: Link, peer: RawPeer) -> None:
    with in_background(lambda: host.request(b"0800000001")) as result:
        first = peer.expect_frame()
        peer.send(bytes([NAK]))
        assert peer.expect_frame() == first  # the same frame again
        peer.send(bytes([ACK]))
        peer.send_frame(b"0810000001")
        peer.expect_control(ACK)
        assert result.result(10) == b"0810000001"
    assert host.stats.naks_received == 1
    assert host.stats.resends == 1
    assert host.stats.frames_sent == 2


def test_t1_expiry_then_resend_succeeds(fast_host: Link, peer: RawPeer) -> None:
    with in_background(lambda: fast_host.request(b"0800000002")) as result:
        peer.expect_frame()  # ignored: no ACK
        peer.expect_frame()  # resent after T1
        peer.send(bytes([ACK]))
        peer.send_frame(b"0810000002")
        peer.expect_control(ACK)
        assert result.result(10) == b"0810000002"
    assert fast_host.stats.resends == 1


def test_no_ack_at_all_fails_after_exactly_four_sends(fast_host: Link, peer: RawPeer) -> None:
    with pytest.raises(LinkError) as info:
        fast_host.request(b"0800000003")
    message = str(info.value)
    assert pair_name_in(message, fast_host)
    assert "no ACK" in message
    assert "4 sends" in message
    assert "3 resends" in message
    received = [e for e in peer.events_until_quiet() if isinstance(e, Frame)]
    assert received == [Frame(b"0800000003")] * 4
    assert fast_host.stats.frames_sent == 4


def pair_name_in(message: str, link: Link) -> bool:
    return link.name in message


def test_naks_only_fail_after_exactly_four_sends(host: Link, peer: RawPeer) -> None:
    def request() -> bytes:
        return host.request(b"0800000004")

    with in_background(request) as result:
        for _ in range(4):
            peer.expect_frame()
            peer.send(bytes([NAK]))
        with pytest.raises(LinkError, match="after 4 sends"):
            result.result(10)
    assert peer.events_until_quiet() == []
    assert host.stats.naks_received == 4


def test_t2_expiry(pair: PtyPair, peer: RawPeer) -> None:
    with make_link(pair.a, t2=0.3) as host, in_background(lambda: host.request(b"08")) as result:
        peer.expect_frame()
        peer.send(bytes([ACK]))
        with pytest.raises(LinkError, match=r"no response within T2 = 0.3 s") as info:
            result.result(10)
        assert pair.a in str(info.value)


def test_lost_ack_response_counts_as_ack(host: Link, peer: RawPeer) -> None:
    with in_background(lambda: host.request(b"0800000005")) as result:
        peer.expect_frame()
        peer.send_frame(b"0810000005")  # the ACK byte "was lost": answer straight away
        peer.expect_control(ACK)
        assert result.result(10) == b"0810000005"
    assert host.stats.acks_received == 0
    assert host.stats.resends == 0


def test_host_naks_bad_response_and_takes_the_resend(host: Link, peer: RawPeer) -> None:
    with in_background(lambda: host.request(b"0800000006")) as result:
        peer.expect_frame()
        peer.send(bytes([ACK]))
        good = encode_frame(b"0810000006")
        peer.send(good[:-1] + bytes([good[-1] ^ 1]))  # bad LRC
        peer.expect_control(NAK)
        peer.send(good)
        peer.expect_control(ACK)
        assert result.result(10) == b"0810000006"
    assert host.stats.naks_sent == 1
    assert host.stats.bad_frames == 1


def test_bad_frame_burst_gets_one_nak(host: Link, peer: RawPeer) -> None:
    # a damaged length: the decoder resyncs inside the frame and finds more bad "frames"
    # (0x02 bytes in the body), but the sender must see one NAK, not one per fragment
    body = b"0810000007" + b"\x02\xaa\xaa" * 5
    with in_background(lambda: host.request(b"0800000007")) as result:
        peer.expect_frame()
        peer.send(bytes([ACK]))
        good = encode_frame(body)
        peer.send(b"\x02\xa0" + good[3:])
        peer.expect_control(NAK)
        assert peer.events_until_quiet() == []
        peer.send(good)
        peer.expect_control(ACK)
        assert result.result(10) == body
    assert host.stats.bad_frames == 6
    assert host.stats.naks_sent == 1


def test_stale_response_is_acked_but_not_returned(pair: PtyPair, peer: RawPeer) -> None:
    def check(request: bytes, response: bytes) -> bool:
        return response[4:10] == request[4:10]

    with (
        make_link(pair.a, response_check=check) as host,
        in_background(lambda: host.request(b"0800000008")) as result,
    ):
        peer.expect_frame()
        peer.send_frame(b"0810000007")  # the previous exchange's response, resent
        peer.expect_control(ACK)
        peer.send(bytes([ACK]))
        peer.send_frame(b"0810000008")
        peer.expect_control(ACK)
        assert result.result(10) == b"0810000008"
        assert host.stats.stale_frames == 1


# -- terminal side -----------------------------------------------------------------------


@pytest.fixture
def raw_host(pair: PtyPair) -> Iterator[RawPeer]:
    """A raw peer on end a, playing the host against ``terminal`` on end b."""
    p = RawPeer(pair.a)
    yield p
    p.close()


def test_terminal_naks_bad_request_then_serves_good_one(terminal: Link, raw_host: RawPeer) -> None:
    handler = Handler()
    with serving(terminal, handler):
        good = encode_frame(b"0800000010")
        raw_host.send(good[:-2] + b"\x04" + good[-1:])  # ETX replaced
        raw_host.expect_control(NAK)
        raw_host.send(good)
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000010"
        raw_host.send(bytes([ACK]))
        assert raw_host.events_until_quiet() == []
    assert handler.calls == [b"0800000010"]
    assert terminal.stats.naks_sent == 1


def test_duplicate_request_resends_cached_response(terminal: Link, raw_host: RawPeer) -> None:
    handler = Handler(lambda body: b"RESP" + bytes(len(handler.calls)))
    with serving(terminal, handler):
        for _ in range(2):
            raw_host.send_frame(b"0800000011 sale")
            raw_host.expect_control(ACK)
            assert raw_host.expect_frame() == b"RESP\x00"
            raw_host.send(bytes([ACK]))
        raw_host.send_frame(b"0800000012 sale")  # a new STAN runs the handler again
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP\x00\x00"
        raw_host.send(bytes([ACK]))
        assert raw_host.events_until_quiet() == []
    assert handler.calls == [b"0800000011 sale", b"0800000012 sale"]
    assert terminal.stats.duplicates == 1


def test_duplicate_request_through_link_calls_handler_once(host: Link, terminal: Link) -> None:
    handler = Handler()
    with serving(terminal, handler):
        assert host.request(b"0800000013") == b"RESP0800000013"
        assert host.request(b"0800000013") == b"RESP0800000013"
    assert len(handler.calls) == 1
    assert terminal.stats.duplicates == 1


def test_request_resent_while_response_unacked_is_not_run_twice(
    fast_terminal: Link, raw_host: RawPeer
) -> None:
    handler = Handler()
    with serving(fast_terminal, handler):
        raw_host.send_frame(b"0800000014")
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000014"
        raw_host.send_frame(b"0800000014")  # as if the ACK of our request was lost
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000014"  # T1 resend of the response
        raw_host.send(bytes([ACK]))
        assert raw_host.events_until_quiet() == []
    assert handler.calls == [b"0800000014"]


def test_new_request_while_response_unacked_is_an_implicit_ack(
    terminal: Link, raw_host: RawPeer
) -> None:
    handler = Handler()
    with serving(terminal, handler):
        raw_host.send_frame(b"0800000015")
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000015"
        raw_host.send_frame(b"0800000016")  # no ACK, but the next request
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000016"
        raw_host.send(bytes([ACK]))
        assert raw_host.events_until_quiet() == []
    assert handler.calls == [b"0800000015", b"0800000016"]
    assert terminal.stats.resends == 0


def test_unacked_response_is_given_up_after_four_sends_and_serving_goes_on(
    fast_terminal: Link, raw_host: RawPeer
) -> None:
    handler = Handler()
    with serving(fast_terminal, handler):
        raw_host.send_frame(b"0800000017")
        raw_host.expect_control(ACK)
        for _ in range(4):
            assert raw_host.expect_frame() == b"RESP0800000017"
        assert raw_host.events_until_quiet() == []
        raw_host.send_frame(b"0800000018")
        raw_host.expect_control(ACK)
        assert raw_host.expect_frame() == b"RESP0800000018"
        raw_host.send(bytes([ACK]))
    assert fast_terminal.stats.frames_sent == 5
    assert fast_terminal.stats.resends == 3


def test_serve_once_times_out_without_a_request(terminal: Link) -> None:
    assert terminal.serve_once(Handler(), timeout=0.05) is False


def test_default_request_key_falls_back_to_raw_body() -> None:
    assert default_request_key(b"\xff\x00 not iso") == b"\xff\x00 not iso"


def test_defaults_use_mti_and_stan_from_the_codec() -> None:
    codec = pytest.importorskip("protocols.codec")
    request = codec.encode(codec.Message("0800", {11: "000007", 41: "TERM0001"}))
    answer = codec.encode(codec.Message("0810", {11: "000007", 39: "00", 41: "TERM0001"}))
    stale = codec.encode(codec.Message("0810", {11: "000006", 39: "00", 41: "TERM0001"}))
    assert default_request_key(request) == ("0800", "000007")
    assert default_response_check(request, answer)
    assert not default_response_check(request, stale)


# -- TCP ---------------------------------------------------------------------------------


class Relay:
    """A TCP relay on 127.0.0.1: connects its first two clients to each other."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conns: list[socket.socket] = []
        try:
            while len(conns) < 2 and not self.stop.is_set():
                if select.select([self.server], [], [], 0.05)[0]:
                    conn = self.server.accept()[0]
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns.append(conn)
            while not self.stop.is_set():
                for conn in select.select(conns, [], [], 0.05)[0]:
                    data = conn.recv(65536)
                    if not data:
                        return
                    other = conns[1] if conn is conns[0] else conns[0]
                    other.sendall(data)
        finally:
            for conn in conns:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()


def test_tcp_socket_url_works_the_same() -> None:
    relay = Relay()
    try:
        with make_link(relay.url) as terminal, make_link(relay.url) as host:
            handler = Handler()
            with serving(terminal, handler):
                for n in range(5):
                    body = request_id(n) + bytes(900)
                    assert host.request(body) == b"RESP" + request_id(n)
                assert host.request(request_id(4)) == b"RESP" + request_id(4)  # duplicate
            assert len(handler.calls) == 5
            assert terminal.stats.duplicates == 1
    finally:
        relay.close()


def test_port_lost_mid_exchange() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"

    def terminal_that_hangs_up() -> None:
        conn = server.accept()[0]
        decoder = FrameDecoder()
        while not decoder.feed(conn.recv(65536)):
            pass
        conn.sendall(bytes([ACK]))
        conn.close()

    thread = threading.Thread(target=terminal_that_hangs_up, daemon=True)
    thread.start()
    try:
        with make_link(url) as host:
            with pytest.raises(LinkError, match="port lost while reading") as info:
                host.request(b"0800000020")
            assert url in str(info.value)
            with pytest.raises(LinkError, match="broken"):
                host.request(b"0800000021")
    finally:
        thread.join(5)
        server.close()


# -- cannot open -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/dev/ttyPOSFLEETNOSUCH", "socket://127.0.0.1:{port}"],
)
def test_url_that_cannot_be_opened(url: str) -> None:
    # The port is held bound (never listening) for the whole test, so nothing else on the
    # machine can take it between choosing it and connecting: the connection is refused.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = url.format(port=held.getsockname()[1])
        with pytest.raises(LinkError) as info:
            Link(url)
    assert f"cannot open {url!r}" in str(info.value)
