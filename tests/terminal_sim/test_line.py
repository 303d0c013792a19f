"""`possim line`: pacing at the baud, per-frame faults, cuts — over real ptys."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols.framing import BadFrame, Frame, FrameDecoder, encode_frame
from protocols.link import Link
from terminal_sim.line import Line, LineConfig, parse_duration

pytestmark = pytest.mark.timeout(60)
POSSIM = str(Path(sys.executable).with_name("possim"))


def _open(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)
    return fd


def _read_for(fd: int, seconds: float, want: int | None = None) -> bytes:
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (want is None or len(got) < want):
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            got += os.read(fd, 65536)
    return got


@pytest.fixture
def wired() -> Iterator[tuple[Line, int, int]]:
    def make(config: LineConfig) -> tuple[Line, int, int]:
        line = Line("pty", "pty", config)
        made.append(line)
        a, b = _open(line.a_name), _open(line.b_name)
        fds.extend((a, b))
        return line, a, b

    made: list[Line] = []
    fds: list[int] = []
    yield make  # type: ignore[misc]
    for fd in fds:
        os.close(fd)
    for line in made:
        line.close()


def test_bytes_cross_both_ways_unchanged(wired) -> None:  # type: ignore[no-untyped-def]
    line, a, b = wired(LineConfig(baud=115200))
    payload = bytes(range(256)) * 4  # 0x03, \r, 0x11... the line must be raw
    os.write(a, payload)
    assert _read_for(b, 5, len(payload)) == payload
    os.write(b, b"back")
    assert _read_for(a, 5, 4) == b"back"
    assert line.stats()["A→B"]["bytes_out"] == len(payload)


def test_pacing_follows_the_baud(wired) -> None:  # type: ignore[no-untyped-def]
    _, a, b = wired(LineConfig(baud=9600))
    start = time.monotonic()
    os.write(a, bytes(1200))
    got = _read_for(b, 10, 1200)
    elapsed = time.monotonic() - start
    assert len(got) == 1200
    assert elapsed >= 1200 * 10 / 9600 * 0.99  # physics: a lower bound only


def test_faults_are_per_frame(wired) -> None:  # type: ignore[no-untyped-def]
    line, a, b = wired(LineConfig(baud=921600, drop=0.3, seed=11))
    frames = [encode_frame(b"frame %03d " % i + bytes(100)) for i in range(100)]
    for frame in frames:
        os.write(a, frame)
    time.sleep(0.5)
    events = FrameDecoder().feed(_read_for(b, 2))
    good = [e for e in events if isinstance(e, Frame)]
    stats = line.stats()["A→B"]
    assert stats["units"] == 100
    assert len(good) == 100 - stats["dropped_units"]
    assert 0 < len(good) < 100
    assert not [e for e in events if isinstance(e, BadFrame)]  # dropped whole, never cut


def test_corruption_breaks_every_frame_lrc(wired) -> None:  # type: ignore[no-untyped-def]
    line, a, b = wired(LineConfig(baud=921600, corrupt=1.0, seed=3))
    for i in range(20):
        os.write(a, encode_frame(b"body %02d" % i))
    events = FrameDecoder().feed(_read_for(b, 1.0))
    assert not [e for e in events if isinstance(e, Frame)]
    assert line.stats()["A→B"]["corrupted_units"] == 20


def test_drop_everything(wired) -> None:  # type: ignore[no-untyped-def]
    _, a, b = wired(LineConfig(baud=921600, drop=1.0))
    os.write(a, encode_frame(b"lost") + b"\x06\x15noise")
    assert _read_for(b, 0.5) == b""


def test_a_cut_line_comes_back(wired) -> None:  # type: ignore[no-untyped-def]
    line, a, b = wired(LineConfig(baud=921600, cut_after=0.3, cut_for=0.5))
    os.write(a, b"before")
    assert _read_for(b, 0.25, 6) == b"before"
    time.sleep(0.35)
    os.write(a, b"during the cut")
    assert _read_for(b, 0.2) == b""
    time.sleep(0.5)
    os.write(a, b"after")
    assert _read_for(b, 1.0, 5) == b"after"
    assert line.stats()["A→B"]["lost_to_cut"] == len(b"during the cut")


def test_link_request_through_a_slow_line_with_latency() -> None:
    with Line("pty", "pty", LineConfig(baud=115200, latency=0.02)) as line:
        host = Link(line.a_name, 115200, response_check=lambda q, r: r == b"re:" + q)
        far = Link(line.b_name, 115200, request_key=lambda body: body)
        stop = threading.Event()
        thread = threading.Thread(target=far.serve_forever, args=(lambda b: b"re:" + b, stop))
        thread.start()
        try:
            for i in range(5):
                assert host.request(b"ping %d" % i) == b"re:ping %d" % i
        finally:
            stop.set()
            thread.join(5)
            host.close()
            far.close()


def test_parse_duration_refuses_nonsense() -> None:
    assert parse_duration("250ms") == 0.25
    for bad in ("", "fast", "5h", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_possim_line_cli() -> None:
    proc = subprocess.Popen(
        [POSSIM, "line", "pty", "pty", "--baud", "115200", "--latency", "5ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        assert words[0] == "READY" and all(w.startswith("/dev/pts/") for w in words[1:])
        a, b = _open(words[1]), _open(words[2])
        try:
            os.write(a, b"hello")
            assert _read_for(b, 5, 5) == b"hello"
        finally:
            os.close(a)
            os.close(b)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    for args in (["--baud", "0"], ["--drop", "2"], ["--latency", "soon"]):
        done = subprocess.run(
            [POSSIM, "line", "pty", "pty", *args], capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
    missing = subprocess.run(
        [POSSIM, "line", "/dev/no-such-tty", "pty"], capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "/dev/no-such-tty" in missing.stderr
