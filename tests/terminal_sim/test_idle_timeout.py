"""Issue 13, "Robustness": one silent TCP client must not hold a terminal forever
(``possim serve`` and ``possim fleet`` disconnect a host silent for the idle timeout), and
the fleet's loop is never stalled by one. Real TCP sockets, real host sessions."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from protocols.link import Link
from protocols.session import HostSession
from terminal_sim.serve import serve_terminal
from terminal_sim.terminal import Terminal
from tests.terminal_sim.conftest import KEY, SERIAL, TID, config, fleet_serving

IDLE = 0.6


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _silent(url: str, first_bytes: bytes = b"") -> socket.socket:
    """A peer that connects (sends ``first_bytes``, e.g. half a frame) and then nothing."""
    sock = socket.create_connection(_address(url), timeout=10)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)  # a NAK for half a frame, then the end
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _sign_on(url: str, serial: str = SERIAL) -> str:
    from protocols.mac import derive_terminal_key  # noqa: PLC0415

    key = KEY if serial == SERIAL else derive_terminal_key(bytes(range(16)), serial)
    with Link(url, 115200, t2=5.0) as link:
        return HostSession(link, TID, key).sign_on().info.serial


@contextmanager
def _serving(tmp_path: Path, idle_s: float) -> Iterator[str]:
    terminal = Terminal(config(), tmp_path / "state")
    stop = threading.Event()
    ready: queue.Queue[str] = queue.Queue()
    thread = threading.Thread(
        target=serve_terminal,
        args=(terminal, "tcp://127.0.0.1:0", stop, ready.put),
        kwargs={"baud": 115200, "idle_s": idle_s},
    )
    thread.start()
    try:
        yield ready.get(timeout=10)
    finally:
        stop.set()
        thread.join(10)
        terminal.close()


def test_one_idle_tcp_client_does_not_hold_a_possim_serve_terminal(tmp_path: Path) -> None:
    with _serving(tmp_path, IDLE) as url:
        for first in (b"", b"\x02\x00\x30"):  # silent from the start; stopped halfway
            silent = _silent(url, first)
            try:
                started = time.monotonic()
                assert _sign_on(url) == SERIAL  # served once the silent one is dropped
                assert time.monotonic() - started >= IDLE * 0.8  # (it was queued behind it)
                assert _closed_by_peer(silent, within=5)
            finally:
                silent.close()
        assert _sign_on(url) == SERIAL  # and a host that talks is served at once


def test_a_host_that_talks_is_not_dropped_while_it_talks(tmp_path: Path) -> None:
    with _serving(tmp_path, IDLE) as url, Link(url, 115200, t2=5.0) as link:
        session = HostSession(link, TID, KEY)
        for _ in range(4):  # 4 exchanges spread over more than the idle timeout
            assert session.sign_on().info.serial == SERIAL
            time.sleep(IDLE / 2)


def test_one_idle_tcp_client_does_not_stall_the_fleet_server(tmp_path: Path) -> None:
    terminals = [Terminal(config(s), tmp_path / s) for s in (SERIAL, "PF00000043")]
    with fleet_serving(terminals, idle_s=IDLE) as server:
        first, second = (slot.url for slot in server.slots)
        silent = _silent(first)
        try:
            assert _sign_on(second, "PF00000043") == "PF00000043"  # the loop is not stalled
            assert _sign_on(first) == SERIAL  # and the held terminal is freed
            assert _closed_by_peer(silent, within=5)
        finally:
            silent.close()
    for terminal in terminals:
        terminal.close()
