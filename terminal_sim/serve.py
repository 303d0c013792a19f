"""Serving emulated terminals: on a fresh pty, an existing serial device, or TCP.

One terminal (``possim serve``):

* ``pty`` — a fresh pty; the terminal serves on its master, the host opens the slave path;
* ``/dev/ttyX`` or any pyserial URL — the terminal opens it (real hardware, a line);
* ``tcp://HOST:PORT`` — the terminal listens; a host connects with ``socket://HOST:PORT``.
  One host at a time, as on a serial line: the next connection is served when the first
  one closes.

Many terminals in one process (``possim fleet``): one listening socket each, watched by a
single selector thread; a connection gets a serving thread for as long as it lasts. Idle
terminals cost a socket and nothing else (no thread, no open state file), which is how
1,000 of them fit in one process on two cores.

Every terminal speaks through :class:`protocols.link.Link`, the same link the host uses.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from protocols.errors import LinkError
from protocols.link import Link
from protocols.ports import SocketPort
from protocols.pty import FdPort, open_pty
from terminal_sim.faults import LossyPort
from terminal_sim.terminal import Terminal

__all__ = ["FleetServer", "parse_tcp", "serve_terminal"]

log = logging.getLogger("possim.serve")

POLL = 0.25
"""Longest blocking read of a serving terminal: bytes are read as soon as they arrive;
this only bounds how late a deadline (T1, the inter-byte timeout) or a stop is noticed.
Idle connected terminals wake 4 times a second."""


def parse_tcp(url: str) -> tuple[str, int]:
    """``tcp://127.0.0.1:9000`` (or ``127.0.0.1:9000``) → ``("127.0.0.1", 9000)``.

    >>> parse_tcp("tcp://127.0.0.1:0"), parse_tcp("localhost:9000")
    (('127.0.0.1', 0), ('localhost', 9000))
    """
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} is not tcp://HOST:PORT")
    return parts.hostname, parts.port


def _link(port: object, baud: int) -> Link:
    """The terminal's end of the link (opening ``port`` when it is a URL or device path)."""
    # Duplicates are recognised by identical bytes: same MTI and STAN *and* same content
    # (a restarted host that reuses a STAN for a new request is not answered from cache).
    return Link(port, baud, request_key=lambda body: body, poll=POLL)  # type: ignore[arg-type]


def serve_connection(terminal: Terminal, port: object, baud: int, stop: threading.Event) -> None:
    """Serve one connection until the peer goes away or ``stop`` is set."""
    link = _link(port, baud)
    try:
        link.serve_forever(terminal.handle, stop)
    except LinkError as exc:
        log.info("%s: %s", terminal.config.serial, exc)
    finally:
        link.close()


def serve_terminal(
    terminal: Terminal,
    where: str,
    stop: threading.Event,
    ready: Callable[[str], None],
    *,
    baud: int = 9600,
) -> None:
    """Serve ``terminal`` on ``where`` (``pty``, ``tcp://H:P``, a device or URL) until ``stop``.

    ``ready(url)`` is called once the terminal can be reached, with what a host opens.
    """
    if where == "pty":
        master, path = open_pty()
        port = FdPort(master, timeout=POLL, name=path, close_fd=True)
        ready(path)
        try:
            serve_connection(terminal, port, baud, stop)
        finally:
            port.close()
        return
    if where.startswith("tcp://"):
        host, number = parse_tcp(where)
        with socket.create_server((host, number), reuse_port=False) as server:
            server.settimeout(POLL * 4)
            actual = server.getsockname()[1]
            ready(f"socket://{host}:{actual}")
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                log.info("%s: host connected", terminal.config.serial)
                sock_port = SocketPort(conn, timeout=POLL)
                try:
                    serve_connection(terminal, sock_port, baud, stop)
                finally:
                    sock_port.close()
        return
    link = _link(where, baud)
    ready(where)
    try:
        link.serve_forever(terminal.handle, stop)
    finally:
        link.close()


@dataclass
class _Slot:
    terminal: Terminal
    server: socket.socket
    url: str
    busy: bool = False


class FleetServer:
    """Many terminals in one process, one TCP port each (see the module docstring)."""

    def __init__(
        self,
        terminals: Iterable[Terminal],
        host: str,
        base_port: int,
        baud: int,
        *,
        drop: float = 0.0,
        corrupt: float = 0.0,
        seed: int | None = None,
    ):
        self.baud = baud
        self.drop = drop
        self.corrupt = corrupt
        self._rng = random.Random(seed)
        self.lossy_ports: list[LossyPort] = []
        self.slots: list[_Slot] = []
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # one unread wake byte is enough: never block on it
        self._done: list[_Slot] = []
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        try:
            for offset, terminal in enumerate(terminals):
                number = base_port + offset if base_port else 0
                try:
                    server = socket.create_server((host, number), backlog=8)
                except OSError as exc:
                    raise LinkError(
                        f"{terminal.config.serial}: cannot listen on {host}:{number}: "
                        f"{exc.strerror or exc}"
                    ) from exc
                server.setblocking(False)
                url = f"socket://{host}:{server.getsockname()[1]}"
                slot = _Slot(terminal, server, url)
                self.slots.append(slot)
                self._selector.register(server, selectors.EVENT_READ, slot)
        except BaseException:
            self.close()
            raise
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def run(self, stop: threading.Event) -> None:
        """Accept and serve until ``stop`` is set; then wait for open connections to end."""
        while not stop.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                slot = key.data
                if slot is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    continue
                self._accept(slot, stop)
            self._rearm()
        deadline = time.monotonic() + 10
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _accept(self, slot: _Slot, stop: threading.Event) -> None:
        try:
            conn, _ = slot.server.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                log.warning("%s: accept failed: %s", slot.terminal.config.serial, exc)
            return
        conn.setblocking(True)
        # one host at a time, as on a serial line: stop listening until this one ends
        self._selector.unregister(slot.server)
        slot.busy = True
        thread = threading.Thread(
            target=self._serve, args=(slot, conn, stop), name=slot.terminal.config.serial
        )
        self._threads.add(thread)
        thread.start()

    def _serve(self, slot: _Slot, conn: socket.socket, stop: threading.Event) -> None:
        port: Any = SocketPort(conn, timeout=POLL)
        if self.drop or self.corrupt:
            with self._lock:
                rng = random.Random(self._rng.getrandbits(64))
            port = LossyPort(port, drop=self.drop, corrupt=self.corrupt, rng=rng)
            with self._lock:
                self.lossy_ports.append(port)
        try:
            serve_connection(slot.terminal, port, self.baud, stop)
        except Exception:
            log.exception("%s: terminal failed", slot.terminal.config.serial)
        finally:
            port.close()
            with self._lock:
                self._done.append(slot)
                self._threads.discard(threading.current_thread())
            with contextlib.suppress(OSError):  # BlockingIOError: a wake is already pending
                self._wake_w.send(b"\0")

    def _rearm(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for slot in done:
            slot.busy = False
            self._selector.register(slot.server, selectors.EVENT_READ, slot)

    def close(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(OSError):
                slot.server.close()
            slot.terminal.close()
        with contextlib.suppress(OSError):
            self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
