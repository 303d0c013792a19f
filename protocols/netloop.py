"""Many links in one thread: a selector loop over TCP connections, each driven by a
:class:`~protocols.linkstate.LinkMachine`.

:class:`NetLoop` watches listening sockets and :class:`Channel` objects (one connected,
non-blocking socket + one link machine each) with one :mod:`selectors` selector, and runs
the machines' timers (T1, T2, the inter-byte timeout) from one heap. It is the I/O edge
under both the host's many-links engine (:mod:`protocols.engine`) and ``possim fleet``
(one terminal per listening port); the link rules stay in the machine.

A channel's machine output is written at once (``send``; what the kernel does not take
is kept and sent when the socket is writable). Subclasses react in
:meth:`Channel.progressed` (after every input or timer) and :meth:`Channel.closed`.

Timers: a channel has at most one heap entry, at or before its machine's
:attr:`~protocols.linkstate.LinkMachine.deadline`; when it comes the machine is polled
and the entry re-armed. A deadline that moved later costs one spare poll.

Not thread-safe, except :meth:`NetLoop.call_soon_threadsafe` (how another thread hands
work to the loop).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Final

from protocols.linkstate import LinkMachine

__all__ = ["Channel", "NetLoop"]

_RECV: Final = 65536
_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE


class Channel:
    """One connected TCP socket driven by ``machine`` (see the module docstring).

    ``inbound``/``outbound`` filter the byte stream (fault injection); ``outbound`` gets
    one frame or ACK/NAK byte per call. ``immediate``: send each frame or ACK/NAK byte the
    moment the machine makes it (a terminal: its ACK leaves before the handler runs, so
    a slow handler costs the host T2, not T1); otherwise output is sent in one piece
    after each input (a host: its ACK and next request in one segment).
    """

    __slots__ = ("_out", "_timer_at", "inbound", "is_closed", "loop", "machine", "outbound", "sock")

    def __init__(
        self,
        loop: NetLoop,
        sock: socket.socket,
        machine: LinkMachine,
        *,
        inbound: Callable[[bytes], bytes] | None = None,
        outbound: Callable[[bytes], bytes] | None = None,
        immediate: bool = False,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.machine = machine
        self.inbound = inbound
        self.outbound = outbound
        self.is_closed = False
        self._out = bytearray()
        self._timer_at: float | None = None
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if immediate:
            machine.sink = self._emit

    # -- hooks ----------------------------------------------------------------------------

    def progressed(self, now: float) -> None:
        """Called after the machine took input or time (override)."""

    def closed(self, reason: str | None) -> None:
        """Called once when the connection ends: ``reason`` None for a local close."""

    # -- driving --------------------------------------------------------------------------

    def flush(self, now: float) -> None:
        """Send what the machine queued, then let the subclass react and re-arm the timer."""
        if self.is_closed:
            return
        if self.outbound is None:
            data = self.machine.take_output()
        else:
            data = b"".join(self.outbound(unit) for unit in self.machine.take_units())
        if data:
            self._send(data)
        if self.is_closed:
            return
        self.progressed(now)
        if not self.is_closed:
            self.loop.rearm(self)

    def close(self, reason: str | None = None) -> None:
        """Close the socket (idempotent) and call :meth:`closed`."""
        if self.is_closed:
            return
        self.is_closed = True
        self.loop.forget(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.closed(reason)

    def _emit(self, unit: bytes) -> None:
        if self.is_closed:
            return
        self._send(self.outbound(unit) if self.outbound is not None else unit)

    def _send(self, data: bytes | bytearray) -> None:
        if not data:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.close(f"connection lost while writing: {exc.strerror or exc}")
            return
        if sent < len(data):
            self._out += data[sent:]
            self.loop.watch(self, _READ | _WRITE)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(f"connection lost while writing: {exc.strerror or exc}")
            return
        del self._out[:sent]
        if not self._out:
            self.loop.watch(self, _READ)

    def _readable(self, now: float) -> None:
        try:
            data = self.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(f"connection lost while reading: {exc.strerror or exc}")
            return
        if not data:
            self.close("the peer closed the connection")
            return
        if self.inbound is not None:
            data = self.inbound(data)
        self.machine.receive(data, now)
        self.flush(now)

    def _timer(self, now: float) -> None:
        self._timer_at = None
        self.machine.poll(now)
        self.flush(now)


class NetLoop:
    """The selector and timer heap behind many channels (see the module docstring)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Channel]] = []
        self._seq = itertools.count()
        self._calls: deque[Callable[[], object]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, _READ, None)

    # -- registration ---------------------------------------------------------------------

    def listen(self, sock: socket.socket, on_accept: Callable[[socket.socket], object]) -> None:
        """Watch a listening socket: ``on_accept(listener)`` when a connection waits."""
        sock.setblocking(False)
        self.selector.register(sock, _READ, on_accept)

    def watch(self, channel: Channel, events: int = _READ) -> None:
        """Watch ``channel``'s socket for ``events`` (register or modify)."""
        try:
            self.selector.modify(channel.sock, events, channel)
        except KeyError:
            self.selector.register(channel.sock, events, channel)

    def add(self, channel: Channel, now: float | None = None) -> None:
        """Start driving ``channel``: read it, send what its machine has queued."""
        self.watch(channel)
        channel.flush(monotonic() if now is None else now)

    def forget(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (a listener or a channel's socket); no error if unknown."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def rearm(self, channel: Channel) -> None:
        """Make sure ``channel``'s machine is polled at its deadline."""
        when = channel.machine.deadline
        if when is None:
            return
        at = channel._timer_at
        if at is None or when < at:
            channel._timer_at = when
            heapq.heappush(self._timers, (when, next(self._seq), channel))

    def call_soon_threadsafe(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` in the loop's thread at its next turn (callable from any thread)."""
        self._calls.append(fn)
        with contextlib.suppress(OSError):  # BlockingIOError: a wake is already pending
            self._wake_w.send(b"\0")

    # -- running ------------------------------------------------------------------------

    def run_once(self, max_wait: float = 0.2) -> None:
        """Wait for I/O or the next timer (at most ``max_wait`` s) and handle what is due."""
        timers = self._timers
        timeout = max_wait
        if self._calls:
            timeout = 0.0
        elif timers:
            timeout = min(max_wait, max(0.0, timers[0][0] - monotonic()))
        for key, events in self.selector.select(timeout):
            target = key.data
            if isinstance(target, Channel):
                if target.is_closed:
                    continue
                if events & _WRITE:
                    target._writable()
                if events & _READ and not target.is_closed:
                    target._readable(monotonic())
            elif target is None:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            else:
                target(key.fileobj)
        while self._calls:
            self._calls.popleft()()
        now = monotonic()
        while timers and timers[0][0] <= now:
            when, _, channel = heapq.heappop(timers)
            if channel.is_closed or channel._timer_at != when:
                continue
            channel._timer(now)

    def close(self) -> None:
        """Close the selector and the wake-up pair (channels and listeners are the owner's)."""
        with contextlib.suppress(OSError):
            self.selector.close()
        self._wake_r.close()
        self._wake_w.close()
