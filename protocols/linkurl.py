"""The allow-list of link URLs: where a host may reach a terminal. Pure, no I/O; every
port is opened through it (:func:`protocols.ports.open_port`), and the fleet's inventory
checks its links with it.

**Link URLs** (:func:`check_url`): a link is one of

* a serial device: ``/dev/ttyS0``, ``/dev/ttyUSB0``, ``/dev/ttyACM0`` (any ``/dev/tty…``),
  a pty ``/dev/pts/N``, a stable name ``/dev/serial/by-id/…`` or ``/dev/serial/by-path/…``,
  macOS's ``/dev/cu.…``;
* ``socket://HOST:PORT`` (raw TCP) or ``rfc2217://HOST:PORT`` (telnet serial control), with
  at most the options ``logging=LEVEL``, ``timeout=SECONDS``, ``ign_set_control``,
  ``poll_modem``;
* ``loop://`` (pyserial's in-memory loop-back: nothing is opened) — only where the caller
  allows it (tests, doctests); the fleet's inventory never does.

Everything else is refused with :class:`~protocols.errors.LinkError`, in particular
pyserial's ``spy://`` (it writes a hex dump to any ``?file=`` path, truncating it even when
the port is unreachable), ``hwgrep://`` (opens whatever device matches a pattern),
``alt://`` and ``cp2110://``, relative paths and other files (opening ``/dev/watchdog``
arms a reboot). A link names where a terminal is reached, never what else to touch.

>>> check_url("/dev/pts/7"), check_url("socket://10.0.0.9:9000")
('/dev/pts/7', 'socket://10.0.0.9:9000')
>>> check_url("spy:///dev/pts/7?file=/etc/passwd")
Traceback (most recent call last):
...
protocols.errors.LinkError: not an allowed link: 'spy:///dev/pts/7?file=/etc/passwd' (want a \
serial device /dev/tty…, /dev/pts/N, /dev/serial/by-id/…, or socket://HOST:PORT, \
rfc2217://HOST:PORT)
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl

from protocols.errors import LinkError

__all__ = ["LINK_FORMS", "check_url"]

LINK_FORMS: Final = (
    "a serial device /dev/tty…, /dev/pts/N, /dev/serial/by-id/…, or socket://HOST:PORT, "
    "rfc2217://HOST:PORT"
)
"""The allowed forms, as an error message words them."""

_DEVICE: Final = re.compile(
    r"/dev/(?:tty[A-Za-z0-9._-]*|pts/\d+|serial/by-(?:id|path)/[A-Za-z0-9:._+-]+"
    r"|cu\.[A-Za-z0-9._-]+)"
)
_NETWORK: Final = ("socket", "rfc2217")
_HOST: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_OPTIONS: Final = {"logging": r"[a-z]+", "timeout": r"\d+(?:\.\d+)?", "ign_set_control": "",
                   "poll_modem": ""}  # fmt: skip


def check_url(url: str, *, loop: bool = True) -> str:
    """``url`` if it is an allowed link (see the module's notes; ``loop``: whether
    ``loop://`` is), else :class:`~protocols.errors.LinkError` naming it."""
    if not isinstance(url, str) or url != url.strip() or not url.isprintable():
        raise LinkError(f"not an allowed link: {url!r} (want {LINK_FORMS})")
    if url.startswith("/"):
        if _DEVICE.fullmatch(url) and "/../" not in url + "/" and "/./" not in url + "/":
            return url
        raise LinkError(f"not an allowed link: {url!r} (want {LINK_FORMS})")
    if loop and url == "loop://":
        return url
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _NETWORK:
        raise LinkError(f"not an allowed link: {url!r} (want {LINK_FORMS})")
    where, _, query = rest.partition("?")
    host, colon, number = where.rpartition(":")
    if not colon or not _HOST.fullmatch(host) or not number.isdigit():
        raise LinkError(f"{url!r} needs host:port")
    if not 0 < int(number) < 65536:
        raise LinkError(f"{url!r}: port {number} is not 1..65535")
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        pattern = _OPTIONS.get(name)
        if pattern is None or not re.fullmatch(pattern, value):
            raise LinkError(
                f"{url!r}: option {name!r} is not allowed (at most {', '.join(_OPTIONS)})"
            )
    return url
