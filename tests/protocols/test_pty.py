"""Virtual serial lines: one raw pty (open_pty + FdPort) and the bridged PtyPair."""

from __future__ import annotations

import os
import termios
import threading
from collections.abc import Iterator
from time import monotonic

import pytest
import serial

from protocols.link import Link
from protocols.pty import FdPort, PtyPair, open_pty

pytestmark = pytest.mark.timeout(30)

ALL_BYTES = bytes(range(256))  # \r, ETX, ^C, ^D, XON/XOFF, DEL... must all pass untouched


def read_exactly(fd: int, n: int, timeout: float = 5.0) -> bytes:
    """Read n bytes from a blocking fd, with a bounded wait (raises if they never come)."""
    got = bytearray()
    deadline = monotonic() + timeout
    port = FdPort(fd, timeout=0.05)
    while len(got) < n:
        assert monotonic() < deadline, f"only {len(got)} of {n} bytes arrived"
        got += port.read(n - len(got))
    return bytes(got)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def is_raw(fd: int) -> bool:
    lflag = termios.tcgetattr(fd)[3]
    iflag = termios.tcgetattr(fd)[0]
    return not (lflag & (termios.ICANON | termios.ECHO | termios.ISIG)) and not (
        iflag & termios.ICRNL
    )


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as p:
        yield p


@pytest.fixture
def ends(pair: PtyPair) -> Iterator[tuple[int, int]]:
    a = os.open(pair.a, os.O_RDWR | os.O_NOCTTY)
    b = os.open(pair.b, os.O_RDWR | os.O_NOCTTY)
    yield a, b
    os.close(a)
    os.close(b)


# -- PtyPair -----------------------------------------------------------------------------


def test_pair_ends_are_raw_distinct_ttys(pair: PtyPair, ends: tuple[int, int]) -> None:
    a, b = ends
    assert pair.a != pair.b
    assert pair.paths == (pair.a, pair.b)
    assert os.isatty(a)
    assert os.isatty(b)
    assert is_raw(a)
    assert is_raw(b)


def test_pair_is_a_null_modem_for_every_byte_value(ends: tuple[int, int]) -> None:
    a, b = ends
    os.write(a, ALL_BYTES)
    assert read_exactly(b, 256) == ALL_BYTES
    os.write(b, ALL_BYTES[::-1])
    assert read_exactly(a, 256) == ALL_BYTES[::-1]


def test_pair_does_not_echo(ends: tuple[int, int]) -> None:
    a, b = ends
    os.write(a, b"ping\r\n")
    assert read_exactly(b, 6) == b"ping\r\n"
    assert FdPort(a, timeout=0.1).read(100) == b""  # nothing came back on a


def test_pair_carries_a_megabyte_both_ways_at_once(ends: tuple[int, int]) -> None:
    a, b = ends
    blob = os.urandom(1 << 20)
    received: dict[str, bytes] = {}

    def reader(fd: int, name: str) -> None:
        received[name] = read_exactly(fd, len(blob), timeout=20)

    threads = [
        threading.Thread(target=reader, args=(b, "b")),
        threading.Thread(target=reader, args=(a, "a")),
    ]
    for t in threads:
        t.start()
    writers = [
        threading.Thread(target=FdPort(a).write, args=(blob,)),
        threading.Thread(target=FdPort(b).write, args=(blob[::-1],)),
    ]
    for t in writers:
        t.start()
    for t in writers + threads:
        t.join(25)
    assert received["b"] == blob
    assert received["a"] == blob[::-1]


def test_unread_side_does_not_block_the_other_direction(ends: tuple[int, int]) -> None:
    a, b = ends
    os.set_blocking(a, False)
    pushed = 0
    chunk = bytes(4096)
    while pushed < 512 * 1024:  # far more than a pty buffer; b never reads
        try:
            pushed += os.write(a, chunk)
        except BlockingIOError:
            break
    os.write(b, b"reply")
    assert read_exactly(a, 5) == b"reply"


def test_pair_end_can_be_reopened(pair: PtyPair) -> None:
    for _ in range(3):
        a = os.open(pair.a, os.O_RDWR | os.O_NOCTTY)
        b = os.open(pair.b, os.O_RDWR | os.O_NOCTTY)
        os.write(b, b"\x02\x03")
        assert read_exactly(a, 2) == b"\x02\x03"
        os.close(a)
        os.close(b)


def test_pyserial_opens_both_ends(pair: PtyPair) -> None:
    with (
        serial.serial_for_url(pair.a, 9600, timeout=0.05) as a,
        serial.serial_for_url(pair.b, 115200, timeout=0.05) as b,
    ):
        a.write(ALL_BYTES)
        got = b""
        deadline = monotonic() + 5
        while len(got) < 256 and monotonic() < deadline:
            got += b.read(b.in_waiting or 1)
        assert got == ALL_BYTES


def test_close_stops_bridge_and_leaks_no_fds() -> None:
    before = open_fds()
    pair = PtyPair()
    assert pair.running
    assert len(open_fds() - before) >= 6  # two masters, two slaves, the wake pipe
    pair.close()
    pair.close()
    assert not pair.running
    assert open_fds() == before
    assert pair.error is None


def test_context_manager_closes_even_with_an_end_open() -> None:
    before = open_fds()
    with PtyPair() as pair:
        fd = os.open(pair.a, os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"left unread")
    assert not pair.running
    os.close(fd)
    assert open_fds() == before


def test_byte_counters(ends: tuple[int, int], pair: PtyPair) -> None:
    a, b = ends
    os.write(a, b"12345")
    read_exactly(b, 5)
    os.write(b, b"12")
    read_exactly(a, 2)
    assert (pair.bytes_a_to_b, pair.bytes_b_to_a) == (5, 2)


# -- open_pty + FdPort -------------------------------------------------------------------


def test_open_pty_gives_raw_master_and_slave_path() -> None:
    before = open_fds()
    master, path = open_pty()
    try:
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            assert is_raw(slave)
            os.write(master, ALL_BYTES)
            assert read_exactly(slave, 256) == ALL_BYTES
            os.write(slave, ALL_BYTES)
            assert read_exactly(master, 256) == ALL_BYTES
        finally:
            os.close(slave)
    finally:
        os.close(master)
    assert open_fds() == before


def test_fdport_without_peer_reads_nothing_instead_of_failing() -> None:
    master, path = open_pty()
    port = FdPort(master, timeout=0.02, close_fd=True)
    try:
        assert port.read(10) == b""  # EIO: nobody has the slave open yet
        assert port.in_waiting == 0
        port.write(b"kept for the first reader")
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY)
        assert read_exactly(slave, 25) == b"kept for the first reader"
        os.close(slave)
    finally:
        port.close()
        port.close()
    assert not port.is_open


def test_link_serves_on_master_while_host_opens_slave_path() -> None:
    master, path = open_pty()
    stop = threading.Event()
    calls: list[bytes] = []

    def handler(body: bytes) -> bytes:
        calls.append(body)
        return b"0810" + body[4:]

    port = FdPort(master, name="pty-master", close_fd=True)
    try:
        with (
            Link(port, 9600, t1_margin=0.1, request_key=lambda body: body) as terminal,
            Link(path, 9600, t1_margin=0.1, t2=2.0, response_check=lambda q, r: True) as host,
        ):
            thread = threading.Thread(target=terminal.serve_forever, args=(handler, stop))
            thread.start()
            try:
                assert host.request(b"0800000001") == b"0810000001"
            finally:
                stop.set()
                thread.join(5)
            assert terminal.name == "pty-master"
        assert port.is_open  # the link does not close a port it was given
    finally:
        port.close()
    assert calls == [b"0800000001"]
