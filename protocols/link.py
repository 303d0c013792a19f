"""The link layer of the wire protocol (section 1) over any pyserial port.

:class:`Link` opens its port with :func:`serial.serial_for_url`, so one code path serves
``/dev/pts/N``, ``/dev/ttyUSB0``, ``socket://127.0.0.1:9000``, ``rfc2217://host:port`` and
``loop://``; it also accepts an already-open port (a ``serial.Serial`` or a
:class:`protocols.pty.FdPort`).

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

Reading never blocks for more than ``poll`` seconds: it asks for ``in_waiting or 1``
bytes, never a large count (pyserial's ``read(n)`` waits for all n). Modem-control lines
are never touched (they raise on a pty).

>>> link = Link("loop://", 115200, t1_margin=0.05, t2=0.2)
>>> link.t1(1000)  # 1000 bytes at 115200 baud + 50 ms
0.13680555555555557
>>> link.close(); link.close()
>>> Link("/dev/no-such-tty")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
protocols.errors.LinkError: cannot open '/dev/no-such-tty': ... No such file or directory...
"""

from __future__ import annotations

import contextlib
import importlib
import math
import socket
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from time import monotonic
from types import TracebackType
from typing import Any, Final, Protocol

from protocols.errors import LinkError, ProtocolError
from protocols.framing import ACK, NAK, BadFrame, Control, Event, Frame, FrameDecoder, encode_frame
from protocols.ports import open_port

__all__ = [
    "Link",
    "LinkStats",
    "SerialPort",
    "default_request_key",
    "default_response_check",
]

_BITS_PER_BYTE: Final = 10  # 8N1: start + 8 data + stop
_ACK_BYTE: Final = bytes((ACK,))
_NAK_BYTE: Final = bytes((NAK,))
_DRAIN_LIMIT: Final = 1 << 20


class SerialPort(Protocol):
    """What :class:`Link` needs of a port: pyserial's ``Serial`` API subset."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class LinkStats:
    """Counters of one :class:`Link`, for protocol-overhead reports.

    ``bytes_sent``/``bytes_received`` count every byte on the wire (frames, ACK/NAK,
    noise); ``frames_sent`` includes resends.
    """

    frames_sent: int = 0
    resends: int = 0
    frames_received: int = 0
    bad_frames: int = 0
    acks_sent: int = 0
    acks_received: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    duplicates: int = 0
    """Requests answered from the response cache (terminal side)."""
    stale_frames: int = 0
    """Frames the host ACKed but rejected as not answering its request."""
    bytes_sent: int = 0
    bytes_received: int = 0
    noise_bytes: int = 0
    """Bytes outside frames that were neither ACK nor NAK."""
    discarded_bytes: int = 0
    """Stale bytes dropped before a new request."""

    def as_dict(self) -> dict[str, int]:
        """The counters by name.

        >>> LinkStats(frames_sent=2).as_dict()["frames_sent"]
        2
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _codec_decode(body: bytes) -> Any:
    """``protocols.codec.decode(body)``, or None when it cannot decode (or is missing)."""
    try:
        codec = importlib.import_module("protocols.codec")
        return codec.decode(body)
    except (ImportError, ProtocolError):
        return None


def default_request_key(body: bytes) -> Hashable:
    """``(MTI, STAN)`` of a request via :mod:`protocols.codec`; the raw body if undecodable.

    >>> default_request_key(b"not ISO 8583")
    b'not ISO 8583'
    """
    msg = _codec_decode(body)
    if msg is None:
        return body
    return (msg.mti, msg.fields.get(11))


def default_response_check(request: bytes, response: bytes) -> bool:
    """Whether ``response`` can answer ``request``: same STAN (field 11) when both decode.

    Used by the host to reject a stale response (a resend of the previous exchange's
    response) that arrives while it waits for the current one. Undecodable bodies pass.

    >>> default_response_check(b"x", b"y")
    True
    """
    req, resp = _codec_decode(request), _codec_decode(response)
    if req is None or resp is None:
        return True
    stan_req, stan_resp = req.fields.get(11), resp.fields.get(11)
    return stan_req is None or stan_resp is None or bool(stan_req == stan_resp)


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
        if baud <= 0:
            raise LinkError(f"baud must be positive, got {baud}")
        self.baud = baud
        self.t1_margin = t1_margin
        self.t2 = t2
        self.resends = resends
        self.poll = poll
        self.interbyte_timeout = (
            interbyte_timeout if interbyte_timeout is not None else 0.1 + 20 * _BITS_PER_BYTE / baud
        )
        self._request_key = request_key or default_request_key
        self._response_check = response_check or default_response_check
        self.stats = LinkStats()
        self._decoder = FrameDecoder()
        self._events: deque[Event] = deque()
        self._nak_due = False
        self._last_rx = monotonic()
        self._cache: tuple[Hashable, bytes | None] | None = None
        self._closed = False
        self._broken: str | None = None
        if isinstance(port, str):
            self.name = port
            self._owns_port = True
            max_frame_time = 10004 * _BITS_PER_BYTE / baud
            self._port: SerialPort = open_port(port, baud, poll, max_frame_time + 5.0)
            _no_delay(self._port)
        else:
            self.name = str(getattr(port, "name", None) or getattr(port, "port", None) or port)
            self._owns_port = False
            self._port = port
            port.timeout = poll

    # -- public -------------------------------------------------------------------------

    def t1(self, frame_len: int) -> float:
        """T1 for a frame of ``frame_len`` bytes: its time on the wire + ``t1_margin``."""
        return frame_len * _BITS_PER_BYTE / self.baud + self.t1_margin

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
        frame = encode_frame(body)
        self._drain()
        answer: list[bytes] = []

        def on_frame(got: bytes) -> bool:
            self._send_control(ACK)
            if self._response_check(body, got):
                answer.append(got)
                return True
            self.stats.stale_frames += 1
            return False

        self._deliver(frame, f"request of {len(body)} bytes", on_frame)
        if answer:  # the response came before (instead of) the ACK
            return answer[0]
        deadline = monotonic() + self.t2
        while True:
            event = self._next_event(deadline)
            if event is None:
                raise LinkError(
                    f"{self.name}: no response within T2 = {self.t2} s after the request "
                    f"of {len(body)} bytes was ACKed"
                )
            if isinstance(event, Frame) and on_frame(event.body):
                return answer[0]
            # an ACK/NAK byte here is stale: ignore it

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
        deadline = math.inf if timeout is None else monotonic() + timeout
        while True:
            event = self._next_event(deadline)
            if event is None:
                return False
            if isinstance(event, Frame):
                self._answer(event.body, handler)
                return True
            # a stray ACK/NAK (e.g. a late answer to an earlier response): ignore it

    def serve_forever(
        self, handler: Callable[[bytes], bytes | None], stop: threading.Event
    ) -> None:
        """Terminal side: :meth:`serve_once` until ``stop`` is set.

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
        try:
            self._port.write(data)
        except (OSError, ValueError, LinkError) as exc:
            raise self._lost("writing", exc) from exc
        self.stats.bytes_sent += len(data)

    def _send_control(self, code: int) -> None:
        self._write(_ACK_BYTE if code == ACK else _NAK_BYTE)
        if code == ACK:
            self.stats.acks_sent += 1
        else:
            self.stats.naks_sent += 1

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
        """Drop what is left of earlier exchanges: queued events and waiting bytes."""
        self._events.clear()
        self._nak_due = False
        dropped = self._decoder.pending
        self._decoder.reset()
        while dropped < _DRAIN_LIMIT and self._in_waiting():
            data = self._read()
            self.stats.bytes_received += len(data)
            dropped += len(data)
        self.stats.discarded_bytes += dropped

    def _fill(self) -> None:
        """One bounded read (at most ``poll`` seconds); queue the events it completes."""
        data = self._read()
        now = monotonic()
        if data:
            self._last_rx = now
            self.stats.bytes_received += len(data)
            events = self._decoder.feed(data)
        elif self._decoder.pending and now - self._last_rx >= self.interbyte_timeout:
            events = self._decoder.flush()
        else:
            return
        self.stats.noise_bytes = self._decoder.skipped
        for event in events:
            if isinstance(event, Frame):
                self.stats.frames_received += 1
            elif isinstance(event, BadFrame):
                self.stats.bad_frames += 1
            elif event.is_ack:
                self.stats.acks_received += 1
            else:
                self.stats.naks_received += 1
        self._events.extend(events)

    def _next_event(self, deadline: float) -> Frame | Control | None:
        """Next good frame or control byte before ``deadline`` (None once it passes).

        Bad frames are answered here: one NAK per burst, once the line is quiet, and none
        if a good frame follows them (that frame gets the ACK instead).
        """
        while True:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, BadFrame):
                    self._nak_due = True
                    continue
                if isinstance(event, Frame):
                    self._nak_due = False
                return event
            if self._nak_due and not self._decoder.pending and not self._in_waiting():
                self._nak_due = False
                self._send_control(NAK)
            if monotonic() >= deadline:
                return None
            self._fill()

    def _deliver(self, frame: bytes, what: str, on_frame: Callable[[bytes], bool]) -> None:
        """Send ``frame`` until ACKed: resend on NAK or T1, at most ``resends`` times.

        ``on_frame(body)`` decides about a good frame that arrives meanwhile: True means
        "implicit ACK" (stop waiting), False means "ignore it and keep waiting".
        """
        t1 = self.t1(len(frame))
        for attempt in range(1 + self.resends):
            if attempt:
                self.stats.resends += 1
            self._write(frame)
            self.stats.frames_sent += 1
            deadline = monotonic() + t1
            while True:
                event = self._next_event(deadline)
                if event is None:
                    break  # T1 expired: resend
                if isinstance(event, Control):
                    if event.is_ack:
                        return
                    break  # NAK: resend
                if on_frame(event.body):
                    return
        raise LinkError(
            f"{self.name}: no ACK for {what} after {1 + self.resends} sends "
            f"(1 + {self.resends} resends, T1 = {t1:.3f} s)"
        )

    def _answer(self, body: bytes, handler: Callable[[bytes], bytes | None]) -> None:
        self._send_control(ACK)
        key = self._request_key(body)
        if self._cache is not None and self._cache[0] == key:
            self.stats.duplicates += 1
            response = self._cache[1]
        else:
            response = handler(body)
            self._cache = (key, response)
        if response is None:
            return

        def on_frame(got: bytes) -> bool:
            if self._request_key(got) == key:
                # the host resent the request (our ACK of it was slow or lost): ACK again;
                # the response it needs is the one being sent
                self._send_control(ACK)
                self.stats.duplicates += 1
                return False
            self._events.appendleft(Frame(got))  # a new request: the host got our answer
            return True

        self._deliver(encode_frame(response), f"response of {len(response)} bytes", on_frame)
