"""The link layer of the wire protocol (section 1) as a state machine, sans I/O.

:class:`LinkMachine` owns every rule of the link: framing, ACK/NAK, T1 and its resends,
T2, one NAK per burst of bad frames, the inter-byte timeout, stale responses and the
terminal's duplicate cache. It reads no port and keeps no clock: the driver feeds it the
bytes it received (:meth:`~LinkMachine.receive`), tells it the time, writes what it
queued (:meth:`~LinkMachine.take_output`), and calls :meth:`~LinkMachine.poll` at
:attr:`~LinkMachine.deadline`. Two drivers use it:

* :class:`protocols.link.Link`, blocking, one port (the host's ``request``, a terminal's
  ``serve_once``), and
* the selector loops that drive thousands of links in one thread (:mod:`protocols.engine`
  on the host side, ``possim fleet`` on the terminal side).

Roles. As the **host**, :meth:`~LinkMachine.start_request` sends a request; the exchange
ends with :attr:`~LinkMachine.response` (the response body) or :attr:`~LinkMachine.error`
(a :class:`~protocols.errors.LinkError`). As a **terminal**, :meth:`~LinkMachine.serve`
installs a handler: every good request frame is ACKed, answered by ``handler(body)`` (or
from the cache, for a repeat of the last request) and the response delivered with the
same T1/resend discipline; a response never ACKed is given up
(:attr:`~LinkMachine.given_up` counts them) and serving goes on. A terminal whose handler
must not run inline (disk I/O in a loop that serves thousands) uses
:meth:`~LinkMachine.serve_deferred`: the request is ACKed and handed over, and the driver
calls :meth:`~LinkMachine.respond` when the answer is ready; a resend of it meanwhile is
ACKed again, never handed over twice.

>>> from protocols.framing import encode_frame
>>> host = LinkMachine(115200, name="demo")
>>> host.start_request(b"0800 ping", now=0.0)
>>> host.take_output() == encode_frame(b"0800 ping")
True
>>> round(host.deadline, 4)  # T1: 14 bytes at 115200 baud + 500 ms
0.5012
>>> host.receive(b"\\x06" + encode_frame(b"0810 pong"), now=0.01)
>>> host.response, host.take_output()
(b'0810 pong', b'\\x06')

(Over 400 lines: the link's rules are one state machine, kept in one place so that no
driver can follow a different rule; a third of the module is docstrings.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from typing import Any, Final

from protocols.errors import LinkError, ProtocolError
from protocols.framing import ACK, NAK, BadFrame, Control, Event, Frame, FrameDecoder, encode_frame

__all__ = [
    "BITS_PER_BYTE",
    "LinkMachine",
    "LinkStats",
    "default_request_key",
    "default_response_check",
]

BITS_PER_BYTE: Final = 10  # 8N1: start + 8 data + stop
_ACK_BYTE: Final = bytes((ACK,))
_NAK_BYTE: Final = bytes((NAK,))

# states
_IDLE: Final = 0
_WAIT_ACK: Final = 1  # a frame of ours is out: request (host) or response (terminal)
_WAIT_RESPONSE: Final = 2  # host: the request was ACKed, T2 runs
_HANDLING: Final = 3  # terminal: a request was handed to a deferred handler


@dataclass(slots=True)
class LinkStats:
    """Counters of one link, for protocol-overhead reports.

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

    def add(self, other: LinkStats) -> None:
        """Add ``other``'s counters to these (totals over many links).

        >>> total = LinkStats(resends=1); total.add(LinkStats(resends=2)); total.resends
        3
        """
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


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


class LinkMachine:
    """One end of a link, sans I/O (see the module docstring).

    Args:
        baud: line speed, for T1 (10 bits per byte).
        t1_margin: the fixed part of T1 in seconds (spec: 0.5).
        t2: seconds the host waits for the response after its request was ACKed (spec: 5).
        resends: resends after the first send before giving up (spec: 3).
        request_key: key of a request for duplicate detection (terminal side); default
            :func:`default_request_key` = (MTI, STAN).
        response_check: ``(request, response) -> bool``, host side; default
            :func:`default_response_check` (same STAN).
        interbyte_timeout: seconds without a byte after which an incomplete frame is
            declared bad (missing ETX); default 100 ms + 20 character times.
        name: what errors call the link (its URL or device).
        sink: where output goes as soon as it is produced, one frame or ACK/NAK byte per
            call (a blocking driver's port write: a terminal answering a burst of
            requests sends each answer before running the next handler). Without a sink
            output is queued for :meth:`take_output`.
    """

    __slots__ = (
        "_cache",
        "_deadline",
        "_decoder",
        "_dispatch",
        "_frame",
        "_handler",
        "_key",
        "_last_rx",
        "_nak_due",
        "_out",
        "_queued",
        "_request",
        "_sends",
        "_state",
        "_t1",
        "baud",
        "error",
        "given_up",
        "handled",
        "interbyte_timeout",
        "name",
        "request_key",
        "resends",
        "response",
        "response_check",
        "sink",
        "stats",
        "t1_margin",
        "t2",
    )

    def __init__(
        self,
        baud: int = 9600,
        *,
        t1_margin: float = 0.5,
        t2: float = 5.0,
        resends: int = 3,
        request_key: Callable[[bytes], Hashable] | None = None,
        response_check: Callable[[bytes, bytes], bool] | None = None,
        interbyte_timeout: float | None = None,
        name: str = "link",
        sink: Callable[[bytes], object] | None = None,
    ) -> None:
        if baud <= 0:
            raise LinkError(f"baud must be positive, got {baud}")
        self.baud = baud
        self.t1_margin = t1_margin
        self.t2 = t2
        self.resends = resends
        self.interbyte_timeout = (
            interbyte_timeout if interbyte_timeout is not None else 0.1 + 20 * BITS_PER_BYTE / baud
        )
        self.request_key = request_key or default_request_key
        self.response_check = response_check or default_response_check
        self.name = name
        self.stats = LinkStats()
        self.response: bytes | None = None
        """Host: the response to the last request, once it has come."""
        self.error: LinkError | None = None
        """Host: why the last request failed (no ACK after every resend, no response in T2)."""
        self.handled = 0
        """Terminal: requests answered (from the handler or the cache)."""
        self.given_up = 0
        """Terminal: responses given up after every resend went unanswered."""
        self._decoder = FrameDecoder()
        self._out: list[bytes] = []
        self.sink = sink
        """Where output goes at once (None: queued for :meth:`take_output`)."""
        self._nak_due = False
        self._last_rx = 0.0
        self._state = _IDLE
        self._deadline = 0.0
        self._frame = b""  # the frame of ours waiting for its ACK
        self._sends = 0
        self._t1 = 0.0
        self._request = b""  # host: the request body in flight
        self._key: Hashable = None  # terminal: key of the request being answered
        self._handler: Callable[[bytes], bytes | None] | None = None
        self._dispatch: Callable[[bytes], object] | None = None
        self._queued: list[bytes] = []  # new requests that came while one was handled
        self._cache: tuple[Hashable, bytes | None] | None = None

    # -- time ---------------------------------------------------------------------------

    def t1(self, frame_len: int) -> float:
        """T1 for a frame of ``frame_len`` bytes: its time on the wire + ``t1_margin``."""
        return frame_len * BITS_PER_BYTE / self.baud + self.t1_margin

    @property
    def deadline(self) -> float | None:
        """When :meth:`poll` must next be called (None: only new bytes can change anything)."""
        when = self._deadline if self._state in (_WAIT_ACK, _WAIT_RESPONSE) else None
        if self._decoder.pending:
            idle_at = self._last_rx + self.interbyte_timeout
            when = idle_at if when is None else min(when, idle_at)
        return when

    @property
    def busy(self) -> bool:
        """A frame of ours waits for its ACK, or the host waits for a response."""
        return self._state != _IDLE

    @property
    def waiting_for_response(self) -> bool:
        """Host: the request was ACKed and T2 runs."""
        return self._state == _WAIT_RESPONSE

    @property
    def pending_input(self) -> int:
        """Bytes of an incomplete frame held by the decoder."""
        return self._decoder.pending

    # -- output -------------------------------------------------------------------------

    def take_output(self) -> bytes:
        """Everything queued for the line since the last call, in order, as one string."""
        if not self._out:
            return b""
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        return out

    def take_units(self) -> list[bytes]:
        """The same as :meth:`take_output`, one frame or ACK/NAK byte per item."""
        out, self._out = self._out, []
        return out

    def _emit(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
        else:
            self._out.append(data)
        self.stats.bytes_sent += len(data)

    def _control(self, code: int) -> None:
        if code == ACK:
            self._emit(_ACK_BYTE)
            self.stats.acks_sent += 1
        else:
            self._emit(_NAK_BYTE)
            self.stats.naks_sent += 1

    def _send_frame(self, now: float) -> None:
        if self._sends:
            self.stats.resends += 1
        self._sends += 1
        self._emit(self._frame)
        self.stats.frames_sent += 1
        self._deadline = now + self._t1

    def _start_delivery(self, frame: bytes, now: float) -> None:
        self._frame = frame
        self._sends = 0
        self._t1 = self.t1(len(frame))
        self._state = _WAIT_ACK
        self._send_frame(now)

    # -- host ---------------------------------------------------------------------------

    def start_request(self, body: bytes, now: float) -> None:
        """Host: send ``body`` as a frame; the exchange ends with :attr:`response` or
        :attr:`error`. Bytes of earlier exchanges still buffered are dropped.

        Raises :class:`~protocols.errors.EncodeError` for an empty or oversized body.
        """
        frame = encode_frame(body)
        self.stats.discarded_bytes += self._decoder.pending
        self._decoder.reset()
        self._nak_due = False
        self.response = None
        self.error = None
        self._request = body
        self._start_delivery(frame, now)

    def discard(self, count: int) -> None:
        """Count ``count`` stale bytes the driver dropped unread (before a new request)."""
        self.stats.bytes_received += count
        self.stats.discarded_bytes += count

    # -- terminal -----------------------------------------------------------------------

    def serve(self, handler: Callable[[bytes], bytes | None] | None) -> None:
        """Terminal: answer every request frame with ``handler(body)`` (None: no response).

        An exception from ``handler`` propagates out of :meth:`receive`; the request stays
        uncached, so a resend of it runs the handler again.
        """
        self._handler = handler
        self._dispatch = None

    def serve_deferred(self, dispatch: Callable[[bytes], object]) -> None:
        """Terminal: hand every request to ``dispatch(body)`` (which must not answer
        inline); the driver then calls :meth:`respond` with the answer."""
        self._handler = _deferred
        self._dispatch = dispatch

    def respond(self, response: bytes | None, now: float) -> None:
        """Terminal: the answer (None: no response) to the request handed to ``dispatch``."""
        if self._state != _HANDLING:
            raise LinkError(f"{self.name}: respond() without a request being handled")
        self._state = _IDLE
        self._answer(self._key, response, now)
        while self._queued and self._state != _HANDLING:
            self._on_request(self._queued.pop(0), now, acked=True)

    # -- input --------------------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the line. Answers, resends and responses are queued for output."""
        if not data:
            return
        self._last_rx = now
        self.stats.bytes_received += len(data)
        self._process(self._decoder.feed(data), now)

    def poll(self, now: float) -> None:
        """Act on the time: flush an incomplete frame after the inter-byte timeout, and
        resend or give up when T1 or T2 has passed."""
        if self._decoder.pending and now - self._last_rx >= self.interbyte_timeout:
            self._process(self._decoder.flush(), now)
        if self._state in (_WAIT_ACK, _WAIT_RESPONSE) and now >= self._deadline:
            if self._state == _WAIT_RESPONSE:
                self._fail(
                    f"{self.name}: no response within T2 = {self.t2} s after the request "
                    f"of {len(self._request)} bytes was ACKed"
                )
            else:
                self._resend_or_fail(now)

    def _process(self, events: list[Event], now: float) -> None:
        stats = self.stats
        stats.noise_bytes = self._decoder.skipped
        for event in events:
            if isinstance(event, Frame):
                stats.frames_received += 1
                self._nak_due = False
                self._on_frame(event.body, now)
            elif isinstance(event, BadFrame):
                stats.bad_frames += 1
                self._nak_due = True
            elif event.is_ack:
                stats.acks_received += 1
                self._on_control(event, now)
            else:
                stats.naks_received += 1
                self._on_control(event, now)
        # one NAK per burst of bad frames, once the line is quiet (no frame half-read)
        if self._nak_due and not self._decoder.pending:
            self._nak_due = False
            self._control(NAK)

    def _on_control(self, event: Control, now: float) -> None:
        if self._state != _WAIT_ACK:
            return  # a stray or late ACK/NAK
        if event.is_ack:
            self._delivered(now)
        else:
            self._resend_or_fail(now)

    def _delivered(self, now: float) -> None:
        if self._handler is None and self._request:
            self._state = _WAIT_RESPONSE
            self._deadline = now + self.t2
        else:
            self._state = _IDLE

    def _resend_or_fail(self, now: float) -> None:
        if self._sends <= self.resends:
            self._send_frame(now)
            return
        what = (
            f"response of {len(self._frame) - 5} bytes"
            if self._handler is not None
            else f"request of {len(self._request)} bytes"
        )
        message = (
            f"{self.name}: no ACK for {what} after {1 + self.resends} sends "
            f"(1 + {self.resends} resends, T1 = {self._t1:.3f} s)"
        )
        if self._handler is not None:
            self.given_up += 1
            self._state = _IDLE
            self.error = LinkError(message)
        else:
            self._fail(message)

    def _fail(self, message: str) -> None:
        self._state = _IDLE
        self._request = b""
        self.error = LinkError(message)

    def _on_frame(self, body: bytes, now: float) -> None:
        if self._handler is not None:
            self._on_request(body, now)
            return
        self._control(ACK)  # every good frame is ACKed
        if self._state == _IDLE or not self.response_check(self._request, body):
            self.stats.stale_frames += 1
            return
        self._state = _IDLE  # the response (while waiting for the ACK: ACK + response)
        self._request = b""
        self.response = body

    def _on_request(self, body: bytes, now: float, *, acked: bool = False) -> None:
        assert self._handler is not None
        key = self.request_key(body)
        if self._state in (_WAIT_ACK, _HANDLING):
            if key == self._key:
                # the host resent the request (our ACK of it was slow or lost): ACK again;
                # the response it needs is the one being sent (or prepared)
                self._control(ACK)
                self.stats.duplicates += 1
                return
            if self._state == _HANDLING:  # answered when the one in hand is
                self._control(ACK)
                self._queued.append(body)
                return
            self._state = _IDLE  # a new request: the host got our answer
        if not acked:
            self._control(ACK)
        if self._cache is not None and self._cache[0] == key:
            self.stats.duplicates += 1
            self.handled += 1
            self._key = key
            response = self._cache[1]
            if response is not None:
                self._start_delivery(encode_frame(response), now)
            return
        self._key = key
        if self._dispatch is not None:
            self._state = _HANDLING
            self._dispatch(body)
            return
        self._answer(key, self._handler(body), now)

    def _answer(self, key: Hashable, response: bytes | None, now: float) -> None:
        self._cache = (key, response)
        self.handled += 1
        if response is not None:
            self._start_delivery(encode_frame(response), now)


def _deferred(body: bytes) -> bytes | None:  # pragma: no cover - never called
    raise AssertionError("a deferred handler is dispatched, not called")
