"""Ports other than pyserial's: a TCP socket with the serial API the link uses.

pyserial's ``socket://`` handler reads one byte per call (its ``in_waiting`` says 0 or
1) and sleeps 300 ms in ``close()`` "for quick reconnects": fine for one lab terminal, a
5-minute tax on a fleet tool that talks to 1,000 TCP terminals in turn. :class:`SocketPort`
gives :class:`~protocols.link.Link` the same ``read``/``write``/``in_waiting``/``timeout``
subset over a plain socket; :func:`open_port` uses it for ``socket://HOST:PORT`` and
:func:`serial.serial_for_url` for everything else (devices, ``rfc2217://``, ``loop://``).

>>> import socket
>>> server = socket.create_server(("127.0.0.1", 0))
>>> port = open_port(f"socket://127.0.0.1:{server.getsockname()[1]}", 9600, 0.05)
>>> peer, _ = server.accept()
>>> port.write(b"hi"), peer.recv(2)
(2, b'hi')
>>> _ = peer.send(b"yo"); port.read(10)
b'yo'
>>> peer.close(); port.read(10)
Traceback (most recent call last):
...
protocols.errors.LinkError: socket://127.0.0.1:...: the peer closed the connection
>>> port.close(); server.close()

Every URL is checked against the allow-list of :mod:`protocols.linkurl` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import termios
from typing import Any
from urllib.parse import urlsplit

import serial

from protocols.errors import LinkError
from protocols.linkurl import check_url

__all__ = ["SocketPort", "open_port"]


class SocketPort:
    """A connected TCP socket as a serial port: ``read`` returns what is there (up to
    ``size``, at least 1 byte or ``b""`` after ``timeout``); a closed peer raises
    :class:`~protocols.errors.LinkError`; ``close`` is immediate."""

    def __init__(
        self, sock: socket.socket, *, timeout: float | None = 0.05, name: str = ""
    ) -> None:
        self.sock = sock
        self.timeout = timeout
        self.is_open = True
        if not name:
            try:
                host, number = sock.getpeername()[:2]
                name = f"tcp:{host}:{number}"
            except OSError:
                name = f"tcp:fd{sock.fileno()}"
        self.name = self.port = name
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def in_waiting(self) -> int:
        buf = bytearray(4)
        try:
            fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, buf)
        except (OSError, ValueError):
            return 0
        return int.from_bytes(buf, "little")

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise LinkError(f"{self.name}: read on a closed port")
        self.sock.settimeout(self.timeout)
        try:
            data = self.sock.recv(max(size, 4096))
        except (TimeoutError, BlockingIOError):
            return b""
        except OSError as exc:
            raise LinkError(f"{self.name}: {exc.strerror or exc}") from exc
        if not data:
            raise LinkError(f"{self.name}: the peer closed the connection")
        return data

    def write(self, data: bytes, /) -> int:
        if not self.is_open:
            raise LinkError(f"{self.name}: write on a closed port")
        self.sock.settimeout(30)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise LinkError(f"{self.name}: {exc.strerror or exc}") from exc
        return len(data)

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            with contextlib.suppress(OSError):
                self.sock.close()


def open_port(url: str, baud: int, timeout: float, write_timeout: float | None = None) -> Any:
    """Open ``url``, an allowed link (:func:`protocols.linkurl.check_url`):
    ``socket://HOST:PORT`` as a :class:`SocketPort`, the rest with
    :func:`serial.serial_for_url`. Raises :class:`~protocols.errors.LinkError`."""
    check_url(url)
    if url.startswith("socket://"):
        parts = urlsplit(url)
        if not parts.hostname or parts.port is None:
            raise LinkError(f"cannot open {url!r}: expected socket://HOST:PORT")
        try:
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        except OSError as exc:
            raise LinkError(f"cannot open {url!r}: {exc.strerror or exc}") from exc
        return SocketPort(sock, timeout=timeout, name=url.split("?", maxsplit=1)[0])
    try:
        return serial.serial_for_url(
            url, baudrate=baud, timeout=timeout, write_timeout=write_timeout
        )
    except (OSError, ValueError) as exc:  # SerialException is an OSError
        raise LinkError(f"cannot open {url!r}: {exc}") from exc
