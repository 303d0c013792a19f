"""Frame-level fault injection, for `possim fleet --drop/--corrupt` over TCP.

:class:`FaultInjector` (sans I/O) sits on the terminal's end of a connection. It cuts the
byte stream into units — a whole frame (``STX LEN… ETX LRC``) or one ACK/NAK byte — in
both directions, and drops each unit with probability ``drop`` or flips one bit of a
frame with probability ``corrupt``, as :mod:`terminal_sim.line` does on a serial line.
Faults apply per frame, not per byte, so a 5 % setting means 5 % of frames, whatever
their size. ``possim fleet``'s selector loop filters each connection through one;
:class:`LossyPort` does the same around a blocking port.

>>> import random
>>> from protocols.framing import encode_frame
>>> inj = FaultInjector(drop=0.0, corrupt=0.0, rng=random.Random(1))
>>> frame = encode_frame(b"0800 hello")
>>> inj.inbound(frame[:4]), inj.inbound(frame[4:] + b"\\x06") == frame + b"\\x06"
(b'', True)
>>> lossy = FaultInjector(drop=0.5, corrupt=0.0, rng=random.Random(1))
>>> sent = b"".join(lossy.outbound(frame) for _ in range(1000))
>>> len(sent) % len(frame), 400 < lossy.dropped < 600
(0, True)

>>> class Pipe:
...     timeout, in_waiting = 0.0, 0
...     def __init__(self, data=b""): self.data, self.sent = bytearray(data), bytearray()
...     def read(self, size=1): out = bytes(self.data[:size]); del self.data[:size]; return out
...     def write(self, data): self.sent += data; return len(data)
...     def close(self): pass
>>> port = LossyPort(Pipe(frame + b"\\x06" + frame), drop=0.0, corrupt=0.0, rng=random.Random(1))
>>> port.read(100) == frame + b"\\x06" + frame
True
>>> port = LossyPort(Pipe(frame * 1000), drop=0.5, corrupt=0.0, rng=random.Random(1))
>>> got = b"".join(iter(lambda: port.read(4096), b""))
>>> len(got) % len(frame), 400 < port.dropped < 600
(0, True)
"""

from __future__ import annotations

import random
from typing import Any

from protocols.framing import ACK, NAK, STX, bcd_length

__all__ = ["FaultInjector", "LossyPort"]


class FaultInjector:
    """Loses or corrupts whole frames and ACK/NAK bytes, both directions (sans I/O).

    :meth:`inbound` takes received bytes in any chunking and returns what survives, whole
    units only (the start of a frame waits for its end); :meth:`outbound` takes one unit
    about to be sent.
    """

    def __init__(
        self, *, drop: float, corrupt: float = 0.0, rng: random.Random | None = None
    ) -> None:
        if not (0 <= drop < 1 and 0 <= corrupt < 1):
            raise ValueError("drop and corrupt are probabilities in [0, 1)")
        self.drop = drop
        self.corrupt = corrupt
        self.rng = rng or random.Random()
        self.dropped = 0
        self.corrupted = 0
        self._pending = bytearray()  # received, not yet cut into units

    def fault(self, unit: bytes) -> bytes:
        """One unit after the dice: itself, ``b""`` (lost) or a copy with one bit flipped."""
        if not unit or unit[0] not in (STX, ACK, NAK):
            return unit
        if self.drop and self.rng.random() < self.drop:
            self.dropped += 1
            return b""
        if self.corrupt and unit[0] == STX and self.rng.random() < self.corrupt:
            self.corrupted += 1
            spot = self.rng.randrange(len(unit))
            damaged = bytearray(unit)
            damaged[spot] ^= 1 << self.rng.randrange(8)
            return bytes(damaged)
        return unit

    def outbound(self, unit: bytes) -> bytes:
        """A unit (one frame or one ACK/NAK byte) about to be sent, after the dice."""
        return self.fault(bytes(unit)) if unit else unit

    def inbound(self, data: bytes | bytearray) -> bytes:
        """Received bytes → the complete units among them, after the dice."""
        self._pending += data
        out = bytearray()
        pending = self._pending
        while pending:
            if pending[0] == STX:
                if len(pending) < 3:
                    break
                length = bcd_length(pending[1], pending[2])
                if length is None:
                    size = 1  # not a frame header: pass the byte on, the decoder resyncs
                else:
                    size = 3 + length + 2
                    if len(pending) < size:
                        break
            else:
                size = 1
            out += self.fault(bytes(pending[:size]))
            del pending[:size]
        return bytes(out)


class LossyPort:
    """A port that loses or corrupts whole frames and ACK/NAK bytes (both directions)."""

    def __init__(
        self, inner: Any, *, drop: float, corrupt: float = 0.0, rng: random.Random | None = None
    ) -> None:
        self.inner = inner
        self.faults = FaultInjector(drop=drop, corrupt=corrupt, rng=rng)
        self._ready = bytearray()  # units that survived, for read()

    @property
    def dropped(self) -> int:
        return self.faults.dropped

    @property
    def corrupted(self) -> int:
        return self.faults.corrupted

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def timeout(self) -> Any:
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self.inner.timeout = value

    @property
    def in_waiting(self) -> int:
        return len(self._ready) or int(self.inner.in_waiting)

    def read(self, size: int = 1) -> bytes:
        if not self._ready:
            chunk = self.inner.read(max(size, 1))
            if chunk:
                self._ready += self.faults.inbound(chunk)
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def write(self, data: bytes) -> int:
        # The link writes one frame or one ACK/NAK per call.
        self.inner.write(self.faults.outbound(data))
        return len(data)

    def close(self) -> None:
        self.inner.close()
