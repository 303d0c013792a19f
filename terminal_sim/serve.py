"""Serving emulated terminals: on a fresh pty, an existing serial device, or TCP.

One terminal (``possim serve``):

* ``pty`` — a fresh pty; the terminal serves on its master, the host opens the slave path;
* ``/dev/ttyX`` or any pyserial URL — the terminal opens it (real hardware, a line);
* ``tcp://HOST:PORT`` — the terminal listens; a host connects with ``socket://HOST:PORT``.
  One host at a time, as on a serial line: the next connection is served when the first
  one closes — or when it has been silent for the **idle timeout** (``idle_s``, default
  :data:`IDLE_TIMEOUT` = 30 s; ``possim serve|fleet --idle-timeout``): a peer that
  connects and sends nothing (or stops halfway) never holds a terminal for good. A
  terminal in the middle of an exchange (answering, waiting for an ACK) is never idle.

Many terminals in one process (``possim fleet``): one listening socket each, all served
by **one loop thread**: a :class:`protocols.netloop.NetLoop` selector loop drives every
connection's :class:`~protocols.linkstate.LinkMachine` (the rules :class:`Link` follows,
shared code). The loop ACKs a request at once and hands it to a small pool of handler
threads (``handlers``, default 16): a terminal's handler writes its SQLite store, and a
commit, a checkpoint or a new file waits on the disk; in the loop that wait would stall
every other link past T1. A terminal handles one request at a time (its link hands the
next one over only after the answer). Idle terminals cost a listening socket and a few
objects; a terminal's state file is open only while a host is connected (it is closed,
in a handler thread, when the host goes, so 10,000 terminals never hold 10,000 SQLite
connections), which is how 10,000 of them fit in one process.

A single terminal (``possim serve``) speaks through :class:`protocols.link.Link`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from protocols.errors import LinkError
from protocols.link import Link
from protocols.linkstate import LinkMachine
from protocols.netloop import Channel, NetLoop
from protocols.ports import SocketPort
from protocols.pty import FdPort, open_pty
from terminal_sim.defaults import IDLE_TIMEOUT
from terminal_sim.faults import FaultInjector
from terminal_sim.terminal import Terminal

__all__ = ["IDLE_TIMEOUT", "FleetServer", "IdleWatch", "parse_tcp", "serve_terminal"]

log = logging.getLogger("possim.serve")

POLL = 0.25
"""Longest blocking read of a serving terminal: bytes are read as soon as they arrive;
this only bounds how late a deadline (T1, the inter-byte timeout) or a stop is noticed.
Idle connected terminals wake 4 times a second."""


class IdleWatch:
    """When a connection was last heard from: one rule for ``possim serve`` and
    ``possim fleet``. A link is idle when no byte came for ``idle_s`` seconds and its
    machine is not in an exchange (:attr:`~protocols.linkstate.LinkMachine.busy`)."""

    __slots__ = ("_bytes", "_since", "idle_s", "machine")

    def __init__(self, machine: LinkMachine, idle_s: float, now: float) -> None:
        self.machine = machine
        self.idle_s = idle_s
        self._bytes = machine.stats.bytes_received
        self._since = now

    def expired(self, now: float) -> bool:
        """True once the peer has been silent for ``idle_s`` (never when ``idle_s`` is 0)."""
        received = self.machine.stats.bytes_received
        if received != self._bytes or self.machine.busy:
            self._bytes, self._since = received, now
            return False
        return self.idle_s > 0 and now - self._since >= self.idle_s


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


def serve_connection(
    terminal: Terminal,
    port: object,
    baud: int,
    stop: threading.Event,
    *,
    idle_s: float = 0.0,
) -> None:
    """Serve one connection until the peer goes away, ``stop`` is set, or (``idle_s`` > 0)
    the peer has been silent that long."""
    link = _link(port, baud)
    watch = IdleWatch(link.machine, idle_s, time.monotonic())
    try:
        link.serve_forever(terminal.handle, stop, until=lambda: watch.expired(time.monotonic()))
    except LinkError as exc:
        log.info("%s: %s", terminal.config.serial, exc)
    finally:
        link.close()
    if watch.expired(time.monotonic()) and not stop.is_set():
        log.info("%s: host silent for %g s: connection closed", terminal.config.serial, idle_s)


def serve_terminal(
    terminal: Terminal,
    where: str,
    stop: threading.Event,
    ready: Callable[[str], None],
    *,
    baud: int = 9600,
    idle_s: float = IDLE_TIMEOUT,
) -> None:
    """Serve ``terminal`` on ``where`` (``pty``, ``tcp://H:P``, a device or URL) until ``stop``.

    ``ready(url)`` is called once the terminal can be reached, with what a host opens.
    Over TCP a host silent for ``idle_s`` seconds is disconnected (0: never).
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
                    serve_connection(terminal, sock_port, baud, stop, idle_s=idle_s)
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


class _TerminalChannel(Channel):
    """One host connection to one terminal of the fleet."""

    __slots__ = ("fleet", "idle", "slot")

    def __init__(self, fleet: FleetServer, slot: _Slot, conn: socket.socket, now: float) -> None:
        faults = fleet.faults_for_connection()
        machine = LinkMachine(fleet.baud, request_key=_same_bytes, name=slot.terminal.config.serial)
        machine.serve_deferred(self._dispatch)
        super().__init__(
            fleet.loop,
            conn,
            machine,
            inbound=faults.inbound if faults else None,
            outbound=faults.outbound if faults else None,
            immediate=True,
        )
        self.fleet = fleet
        self.slot = slot
        self.idle = IdleWatch(machine, fleet.idle_s, now)

    def _dispatch(self, body: bytes) -> None:
        self.fleet.pool.submit(self._handle, body)

    def _handle(self, body: bytes) -> None:
        """In a handler thread: answer, then hand the answer back to the loop."""
        try:
            response = self.slot.terminal.handle(body)
        except Exception:  # a bug must not take the other 9,999 terminals down
            log.exception("%s: terminal failed: closing the connection", self.machine.name)
            self.loop.call_soon_threadsafe(lambda: self.close("terminal failed"))
            return
        self.loop.call_soon_threadsafe(lambda: self._respond(response))

    def _respond(self, response: bytes | None) -> None:
        if not self.is_closed:
            now = time.monotonic()
            self.machine.respond(response, now)
            self.flush(now)

    def closed(self, reason: str | None) -> None:
        self.fleet.connection_ended(self)


def _same_bytes(body: bytes) -> bytes:
    # Duplicates are recognised by identical bytes: same MTI and STAN *and* same content
    # (a restarted host that reuses a STAN for a new request is not answered from cache).
    return body


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
        handlers: int = 16,
        idle_s: float = IDLE_TIMEOUT,
    ):
        if not (0 <= drop < 1 and 0 <= corrupt < 1):
            raise ValueError("drop and corrupt are probabilities in [0, 1)")
        self.baud = baud
        self.idle_s = idle_s
        """Seconds a connected host may stay silent before it is disconnected (0: never)."""
        self._swept = 0.0
        self.drop = drop
        self.corrupt = corrupt
        self._rng = random.Random(seed)
        self.injectors: list[FaultInjector] = []
        """The fault injectors of every connection so far (their dropped/corrupted counts)."""
        self.slots: list[_Slot] = []
        self.loop = NetLoop()
        self.pool = ThreadPoolExecutor(handlers, thread_name_prefix="possim-handler")
        self.channels: set[_TerminalChannel] = set()
        self.served = 0
        """Connections served to their end."""
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
                url = f"socket://{host}:{server.getsockname()[1]}"
                slot = _Slot(terminal, server, url)
                self.slots.append(slot)
                self.loop.listen(server, self._acceptor(slot))
        except BaseException:
            self.close()
            raise

    def faults_for_connection(self) -> FaultInjector | None:
        """A fault injector with its own dice for a new connection (None on a clean line)."""
        if not (self.drop or self.corrupt):
            return None
        rng = random.Random(self._rng.getrandbits(64))
        injector = FaultInjector(drop=self.drop, corrupt=self.corrupt, rng=rng)
        self.injectors.append(injector)
        return injector

    def run(self, stop: threading.Event) -> None:
        """Accept and serve until ``stop`` is set; then close open connections."""
        while not stop.is_set():
            self.loop.run_once(0.2)
            self.close_idle(time.monotonic())
        for channel in list(self.channels):
            channel.close()

    def close_idle(self, now: float) -> None:
        """Disconnect hosts silent for :attr:`idle_s` (looked at about once a second, so a
        silent peer holds its terminal, never the loop, and at most ``idle_s`` + 1 s)."""
        if not self.idle_s or now - self._swept < min(1.0, self.idle_s / 2):
            return
        self._swept = now
        for channel in [c for c in self.channels if c.idle.expired(now)]:
            log.info("%s: host silent for %g s: connection closed", channel.machine.name,
                     self.idle_s)  # fmt: skip
            channel.close("idle")

    def _acceptor(self, slot: _Slot) -> Callable[[object], None]:
        def accept(_: object) -> None:
            self._accept(slot)

        return accept

    def _accept(self, slot: _Slot) -> None:
        try:
            conn, _ = slot.server.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                log.warning("%s: accept failed: %s", slot.terminal.config.serial, exc)
            return
        # one host at a time, as on a serial line: stop listening until this one ends
        self.loop.forget(slot.server)
        slot.busy = True
        channel = _TerminalChannel(self, slot, conn, time.monotonic())
        self.channels.add(channel)
        self.loop.add(channel)

    def connection_ended(self, channel: _TerminalChannel) -> None:
        """A host went away: release the terminal's state file, listen again."""
        self.channels.discard(channel)
        self.served += 1
        slot = channel.slot
        # the store reopens on the next request; closing checkpoints it (disk): not here.
        # Released, not shut down: a kill after this is a power loss (terminal.release).
        with contextlib.suppress(RuntimeError):  # the pool is shut down: close() does it
            self.pool.submit(slot.terminal.release)
        slot.busy = False
        with contextlib.suppress(OSError, ValueError):
            self.loop.listen(slot.server, self._acceptor(slot))

    def close(self) -> None:
        """Stop serving and shut every terminal down (each records an orderly shutdown, in
        the handler threads: a disk write per terminal that ever booted)."""
        for channel in list(self.channels):
            channel.close()
        for slot in self.slots:
            with contextlib.suppress(OSError):
                slot.server.close()
            with contextlib.suppress(RuntimeError):  # the pool is already shut down
                self.pool.submit(slot.terminal.close)
        self.pool.shutdown(wait=True)
        self.loop.close()
