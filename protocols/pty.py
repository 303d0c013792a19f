"""Virtual serial lines on pseudo-terminals, without external tools (no socat).

Two tools, for two jobs:

* :func:`open_pty` - **one** pty: ``(master_fd, slave_path)``. Use it to *serve on a fresh
  pty*: the program (e.g. the terminal simulator) keeps the master fd and prints the
  slave path, which any serial program opens like ``/dev/ttyUSB0``. Wrap the master in
  :class:`FdPort` to drive it with :class:`protocols.link.Link`.
* :class:`PtyPair` - a **null-modem cable** between two named device paths ``a`` and
  ``b``: bytes written to one come out of the other. Use it when *both* ends are
  programs that open a path (tests, benchmarks, a simulator and the fleet tool in two
  processes). It is two ptys bridged by a background thread.

Both put every end in raw mode: a fresh pty is *cooked* (ICANON, ECHO, ISIG, ICRNL on),
which would echo bytes back, turn ``\\r`` into ``\\n`` and treat 0x03 (ETX!) as an
interrupt. A pty ignores the baud rate: bytes move at memory speed.

>>> with PtyPair() as pair:
...     a = os.open(pair.a, os.O_RDWR | os.O_NOCTTY)
...     b = os.open(pair.b, os.O_RDWR | os.O_NOCTTY)
...     _ = os.write(a, b"\\x02\\r\\x03")
...     got = b""
...     while len(got) < 3:
...         got += os.read(b, 3)
...     os.close(a); os.close(b)
>>> got
b'\\x02\\r\\x03'
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import termios
import threading
import tty
from types import TracebackType
from typing import Final

from protocols.errors import LinkError

__all__ = ["FdPort", "PtyPair", "open_pty"]

_CHUNK: Final = 65536
_HIGH_WATER: Final = 1 << 20  # stop reading a side while 1 MiB waits to go the other way


def _raw_pair() -> tuple[int, int, str]:
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise LinkError(f"cannot open a pty: {exc.strerror}") from exc
    try:
        tty.setraw(master)
        tty.setraw(slave)
        path = os.ttyname(slave)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return master, slave, path


def open_pty() -> tuple[int, str]:
    """Open one raw pty; return ``(master_fd, slave_path)``. The caller closes the fd.

    The slave stays in raw mode after this returns (the settings live with the pty, not
    with an open file). While no process has the slave path open, reading the master
    fails with ``EIO`` (:class:`FdPort` treats that as "no peer yet"); bytes written to
    the master meanwhile are kept for the first reader.

    >>> master, path = open_pty()
    >>> path.startswith("/dev/")
    True
    >>> os.close(master)
    """
    master, slave, path = _raw_pair()
    os.close(slave)
    return master, path


class FdPort:
    """The part of pyserial's ``Serial`` API that :class:`~protocols.link.Link` uses, over
    an open file descriptor (typically a pty master from :func:`open_pty`).

    ``read(size)`` returns as soon as any byte is available (up to ``size``), or ``b""``
    after ``timeout`` seconds. ``EIO`` from a pty master whose slave nobody has open reads
    as "no data". Closing the port does not close the fd unless ``close_fd=True``.

    >>> master, path = open_pty()
    >>> port = FdPort(master, timeout=0.01, close_fd=True)
    >>> peer = os.open(path, os.O_RDWR | os.O_NOCTTY)
    >>> _ = os.write(peer, b"hi")
    >>> port.read(10)
    b'hi'
    >>> port.read(10)  # nothing more: empty after the timeout
    b''
    >>> port.close(); os.close(peer)
    """

    def __init__(
        self, fd: int, *, timeout: float | None = 0.05, name: str = "", close_fd: bool = False
    ) -> None:
        self.fd = fd
        self.timeout = timeout
        self.name = name or f"fd:{fd}"
        self.port = self.name
        self._close_fd = close_fd
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        """Bytes that can be read without blocking."""
        buf = bytearray(4)
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, buf)
        except OSError:
            return 0
        return int.from_bytes(buf, "little")

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, as soon as at least one is there; ``b""`` on timeout."""
        if not self.is_open:
            raise LinkError(f"{self.name}: read on a closed port")
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # pty master without a slave opened: nobody there yet. Wait the timeout out
            # rather than spin (select keeps reporting the fd readable).
            threading.Event().wait(self.timeout or 0.0)
            return b""

    def write(self, data: bytes, /) -> int:
        """Write all of ``data`` (blocking); return its length."""
        if not self.is_open:
            raise LinkError(f"{self.name}: write on a closed port")
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
                continue
            view = view[sent:]
        return len(data)

    def close(self) -> None:
        """Mark closed (idempotent); close the fd too if created with ``close_fd=True``."""
        if self.is_open:
            self.is_open = False
            if self._close_fd:
                os.close(self.fd)


class PtyPair:
    """A virtual null-modem cable: two pty slave paths ``a`` and ``b``, bridged.

    A background thread copies bytes master(a) -> master(b) and back, with non-blocking
    writes so one side that is not read never stalls the other direction (each direction
    buffers up to 1 MiB, then stops reading its source). The pair keeps its own handle on
    both slaves, so either end may be opened, closed and reopened at will while the pair
    lives. :meth:`close` (or leaving the ``with`` block) stops the thread and closes every
    fd it opened; it is idempotent.

    >>> pair = PtyPair()
    >>> pair.a != pair.b and pair.running
    True
    >>> pair.close(); pair.close()
    >>> pair.running
    False
    """

    def __init__(self) -> None:
        self._fds: list[int] = []
        try:
            self._ma, sa, self.a = _raw_pair()
            self._fds += [self._ma, sa]
            self._mb, sb, self.b = _raw_pair()
            self._fds += [self._mb, sb]
            self._wake_r, self._wake_w = os.pipe()
            self._fds += [self._wake_r, self._wake_w]
            for fd in (self._ma, self._mb, self._wake_r):
                os.set_blocking(fd, False)
        except BaseException:
            self._close_fds()
            raise
        self.bytes_a_to_b = 0
        self.bytes_b_to_a = 0
        self.error: OSError | None = None
        """The OS error that stopped the bridge thread, if one did."""
        self._closed = False
        self._thread = threading.Thread(target=self._bridge, name="PtyPair-bridge", daemon=True)
        self._thread.start()

    @property
    def paths(self) -> tuple[str, str]:
        """``(a, b)``: the two device paths, one per end of the cable."""
        return self.a, self.b

    @property
    def running(self) -> bool:
        """True while the bridge thread copies bytes."""
        return self._thread.is_alive()

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the bridge and close every fd of the pair (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        self._close_fds()

    def _close_fds(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _bridge(self) -> None:
        ma, mb, wake = self._ma, self._mb, self._wake_r
        to_b = bytearray()  # read from master a, waiting to be written to master b
        to_a = bytearray()
        try:
            while True:
                readers = [wake]
                if len(to_b) < _HIGH_WATER:
                    readers.append(ma)
                if len(to_a) < _HIGH_WATER:
                    readers.append(mb)
                writers = ([mb] if to_b else []) + ([ma] if to_a else [])
                readable, writable, _ = select.select(readers, writers, [])
                if wake in readable:
                    return
                if ma in readable:
                    self.bytes_a_to_b += _pull(ma, to_b)
                if mb in readable:
                    self.bytes_b_to_a += _pull(mb, to_a)
                if to_b and (mb in writable or ma in readable):
                    _push(mb, to_b)
                if to_a and (ma in writable or mb in readable):
                    _push(ma, to_a)
        except OSError as exc:  # pragma: no cover - only on a broken pty
            self.error = exc


def _pull(fd: int, into: bytearray) -> int:
    try:
        data = os.read(fd, _CHUNK)
    except (BlockingIOError, InterruptedError):
        return 0
    into += data
    return len(data)


def _push(fd: int, data: bytearray) -> None:
    try:
        sent = os.write(fd, data)
    except (BlockingIOError, InterruptedError):
        return
    del data[:sent]
