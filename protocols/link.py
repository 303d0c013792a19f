"""The link layer of the wire protocol (section 1) over any pyserial port.

:class:`Link` opens its port with :func:`protocols.ports.open_port`, so one code path serves
``/dev/pts/N``, ``/dev/ttyUSB0``, ``socket://127.0.0.1:9000``, ``rfc2217://host:port`` and
``loop://`` — only those forms (:func:`protocols.linkurl.check_url`: pyserial's ``spy://``,
``hwgrep://``, ``alt://`` and other files are refused); it also accepts an already-open port
(a ``serial.Serial`` or a :class:`protocols.pty.FdPort`).

Discipline (both directions):

* every frame is answered with one byte, ACK (good) or NAK (bad LRC, BCD length, ETX);
* the sender waits **T1** = frame time at the line's baud (10 bits per byte) + 500 ms
  for it; on NAK or T1 expiry it resends the same frame, at most 3 times, then raises
  :class:`~protocols.errors.LinkError`;
* the host (:meth:`Link.request`) waits **T2** = 5 s after the ACK of its request for
  the response frame and ACKs it; a good frame received while still waiting for the ACK
  counts as ACK + response (the ACK byte was lost);
* the terminal (:meth:`Link.serve_once` / :meth:`Link.serve_forever`) ACKs a request,
  calls the handler and sends the response with the same ACK/T1/resend discipline. A
  request with the same key (MTI, STAN) as the last one processed is ACKed and answered
  from the cached response: the handler never runs twice for it.

Bad frames from one burst are answered with a single NAK, sent once the line is quiet:
after a damaged length the decoder resyncs inside the damaged frame and may report
several bad frames for it, and one NAK per fragment would burn the sender's resends.

Every one of these rules lives in :class:`protocols.linkstate.LinkMachine` (sans I/O);
:class:`Link` is its blocking driver over one port, as the selector loops of
:mod:`protocols.engine` and ``possim fleet`` are its drivers over thousands.

Reading never blocks for more than ``poll`` seconds: it asks for ``in_waiting or 1``
bytes, never a large count (pyserial's ``read(n)`` waits for all n). Modem-control lines
are never touched (they raise on a pty).

>>> link = Link("loop://", 115200, t1_margin=0.05, t2=0.2)
>>> link.t1(1000)  # 1000 bytes at 115200 baud + 50 ms
0.13680555555555557
>>> link.close(); link.close()
>>> Link("/dev/ttyNOSUCH9")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
protocols.errors.LinkError: cannot open '/dev/ttyNOSUCH9': ... No such file or directory...
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import Callable, Hashable
from time import monotonic
from types import TracebackType
from typing import Final, Protocol

from protocols.errors import LinkError
from protocols.linkstate import (
    BITS_PER_BYTE,
    LinkMachine,
    LinkStats,
    default_request_key,
    default_response_check,
)
from protocols.ports import open_port

__all__ = [
    "Link",
    "LinkStats",
    "SerialPort",
    "default_request_key",
    "default_response_check",
]

_DRAIN_LIMIT: Final = 1 << 20


class SerialPort(Protocol):
    """What :class:`Link` needs of a port: pyserial's ``Serial`` API subset."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


def _no_delay(port: object) -> None:
    """Turn Nagle off on a TCP-backed port (``socket://``, ``rfc2217://``).

    The link writes single ACK bytes and waits for answers: with Nagle's algorithm (and
    the peer's delayed ACKs) every exchange stalls about 40 ms; measured on localhost,
    75 ms per 900-byte request with Nagle, 5 ms without.
    """
    sock = getattr(port, "_socket", None)  # where pyserial's TCP handlers keep it
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Link:
    """One end of the serial link: the host (:meth:`request`) or a terminal (:meth:`serve_once`).

    Args:
        port: a URL/device for :func:`serial.serial_for_url`, or an open port object
            (which the caller keeps ownership of: :meth:`close` does not close it).
        baud: line speed, used for the port and for T1 (a pty ignores it).
        t1_margin: the fixed part of T1 in seconds (spec: 0.5).
        t2: seconds the host waits for the response after its request was ACKed (spec: 5).
        resends: resends after the first send before giving up (spec: 3).
        request_key: key of a request for duplicate detection (terminal side); default
            :func:`default_request_key` = (MTI, STAN).
        response_check: ``(request, response) -> bool``, host side; default
            :func:`default_response_check` (same STAN).
        poll: longest single blocking read, seconds; bounds the reaction time to
            deadlines and :meth:`serve_forever`'s stop event.
        interbyte_timeout: seconds without a byte after which an incomplete frame is
            declared bad (missing ETX); default 100 ms + 20 character times.

    Not thread-safe: one thread uses a link at a time (a terminal thread serving, or a
    host thread requesting).
    """

    def __init__(
        self,
        port: str | SerialPort,
        baud: int = 9600,
        *,
        t1_margin: float = 0.5,
        t2: float = 5.0,
        resends: int = 3,
        request_key: Callable[[bytes], Hashable] | None = None,
        response_check: Callable[[bytes, bytes], bool] | None = None,
        poll: float = 0.02,
        interbyte_timeout: float | None = None,
    ) -> None:
        self.machine = LinkMachine(
            baud,
            t1_margin=t1_margin,
            t2=t2,
            resends=resends,
            request_key=request_key,
            response_check=response_check,
            interbyte_timeout=interbyte_timeout,
            sink=self._write,
        )
        """The link's rules and state (:class:`~protocols.linkstate.LinkMachine`)."""
        self.poll = poll
        self._closed = False
        self._broken: str | None = None
        if isinstance(port, str):
            self.name = port
            self._owns_port = True
            max_frame_time = 10004 * BITS_PER_BYTE / baud
            self._port: SerialPort = open_port(port, baud, poll, max_frame_time + 5.0)
            _no_delay(self._port)
        else:
            self.name = str(getattr(port, "name", None) or getattr(port, "port", None) or port)
            self._owns_port = False
            self._port = port
            port.timeout = poll
        self.machine.name = self.name

    # -- settings, kept by the machine ----------------------------------------------------

    @property
    def baud(self) -> int:
        return self.machine.baud

    @property
    def t1_margin(self) -> float:
        return self.machine.t1_margin

    @t1_margin.setter
    def t1_margin(self, value: float) -> None:
        self.machine.t1_margin = value

    @property
    def t2(self) -> float:
        return self.machine.t2

    @t2.setter
    def t2(self, value: float) -> None:
        self.machine.t2 = value

    @property
    def resends(self) -> int:
        return self.machine.resends

    @property
    def interbyte_timeout(self) -> float:
        return self.machine.interbyte_timeout

    @property
    def stats(self) -> LinkStats:
        """The link's counters."""
        return self.machine.stats

    # -- public -------------------------------------------------------------------------

    def t1(self, frame_len: int) -> float:
        """T1 for a frame of ``frame_len`` bytes: its time on the wire + ``t1_margin``."""
        return self.machine.t1(frame_len)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Close the link (idempotent); closes the port only if the link opened it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_port:
            # closing a lost port: nothing left to do
            with contextlib.suppress(OSError, ValueError):
                self._port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Link({self.name!r}, {self.baud})"

    def request(self, body: bytes) -> bytes:
        """Host side: send ``body`` as a frame, wait for ACK, then the response; return it.

        Stale bytes waiting on the line are dropped first. The response frame is ACKed.

        Raises:
            LinkError: no ACK after 1 + ``resends`` sends, no response within T2, or the
                port failed.
            EncodeError: ``body`` is empty or longer than 9999 bytes.
        """
        self._check_open()
        machine = self.machine
        machine.serve(None)
        self._drain()
        machine.start_request(body, monotonic())
        while True:
            if machine.response is not None:
                return machine.response
            if machine.error is not None:
                raise machine.error
            self._step()

    def serve_once(
        self, handler: Callable[[bytes], bytes | None], timeout: float | None = None
    ) -> bool:
        """Terminal side: handle one request frame; False if none came within ``timeout``.

        The request is ACKed; ``handler(body)`` returns the response body (or None for no
        response), which is sent and resent until ACKed. A repeat of the last request
        (same key) gets the cached response without calling the handler.

        Raises:
            LinkError: the response was not ACKed after 1 + ``resends`` sends, or the
                port failed.
        """
        self._check_open()
        machine = self.machine
        machine.serve(handler)
        deadline = math.inf if timeout is None else monotonic() + timeout
        handled, given_up = machine.handled, machine.given_up
        while True:
            if machine.given_up != given_up:
                assert machine.error is not None
                raise machine.error
            if machine.handled != handled:
                if not machine.busy:
                    return True
            elif monotonic() >= deadline:
                return False
            self._step()

    def serve_forever(
        self,
        handler: Callable[[bytes], bytes | None],
        stop: threading.Event,
        *,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Terminal side: :meth:`serve_once` until ``stop`` is set (or ``until()`` is true,
        asked after each request and each ``poll`` without one: an idle timeout).

        A response that is never ACKed is given up (the host will resend its request and
        get the cached response); a failed port raises :class:`LinkError` unless ``stop``
        is already set. Exceptions from ``handler`` propagate (the request stays
        uncached, so a resend of it runs the handler again). Stop it by setting ``stop``,
        joining the thread, then closing the link.
        """
        while not stop.is_set():
            try:
                self.serve_once(handler, timeout=self.poll)
            except LinkError:
                if stop.is_set():
                    return
                if self._broken is not None or self._closed:
                    raise
            if until is not None and until():
                return

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LinkError(f"{self.name}: link is closed")
        if self._broken is not None:
            raise LinkError(f"{self.name}: link is broken: {self._broken}")

    def _lost(self, action: str, exc: BaseException) -> LinkError:
        if self._closed:
            self._broken = f"closed while {action}"
        else:
            self._broken = f"port lost while {action}: {exc}"
        return LinkError(f"{self.name}: {self._broken}")

    def _write(self, data: bytes) -> None:
        """The machine's sink: one frame or ACK/NAK byte per write, at once."""
        try:
            self._port.write(data)
        except (OSError, ValueError, LinkError) as exc:
            raise self._lost("writing", exc) from exc

    def _in_waiting(self) -> int:
        try:
            return self._port.in_waiting
        except (OSError, ValueError, LinkError) as exc:
            raise self._lost("reading", exc) from exc

    def _read(self) -> bytes:
        try:
            return self._port.read(self._port.in_waiting or 1)
        except (OSError, ValueError, LinkError) as exc:
            raise self._lost("reading", exc) from exc

    def _drain(self) -> None:
        """Drop what is left of earlier exchanges: bytes waiting on the port."""
        dropped = 0
        while dropped < _DRAIN_LIMIT and self._in_waiting():
            data = self._read()
            self.machine.discard(len(data))
            dropped += len(data)

    def _step(self) -> None:
        """Act on the time, then one bounded read (at most ``poll`` seconds) and its bytes."""
        machine = self.machine
        error = machine.error
        machine.poll(monotonic())
        if machine.error is not error:  # T1 or T2 ran out: the caller decides
            return
        data = self._read()
        if data:
            machine.receive(data, monotonic())
