"""One terminal session: resolve the terminal, open its link once, sign on once, check
who answers. Sync, push, provisioning and verification all run over it.

>>> # with engine.connect() as conn: ref = resolve(conn, serial="PS00000009")
>>> # with DeviceSession(ref, master_key=key) as dev: dev.signed.info.firmware, dev.host.status()

:func:`resolve` is the one lookup of "which terminal, reached how": by serial (its
recorded link, or a given one) or by link alone. :class:`DeviceSession` opens the link,
signs on (0800/001) and checks identity: the terminal must answer with the serial asked
for and, when the inventory has one, the same MID (:class:`IdentityError` otherwise).
Link and protocol failures are raised as they are (:class:`~protocols.errors.ProtocolError`,
:class:`OSError`): each operation words and records them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, select

from fleet.core.errors import InputError, JobError, NotFoundError
from fleet.core.models import TERMINALS
from fleet.inventory import get_terminal
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.session import HostSession, SignOn

__all__ = ["DeviceError", "DeviceSession", "IdentityError", "TerminalRef", "resolve"]

UNSIGNED = bytes(16)
"""Sign-on is not MACed (wire protocol §5): a session that only signs on needs no key."""


class DeviceError(JobError):
    """Talking to a terminal failed; ``retryable`` when a new link may do better (the link
    broke), not when the terminal refused or disagreed."""

    def __init__(self, message: str, *, where: str | None = None, retryable: bool = False):
        super().__init__(message, where=where)
        self.retryable = retryable


class IdentityError(DeviceError):
    """The terminal on the link is not the one the inventory names (serial or MID)."""


@dataclass(frozen=True, slots=True)
class TerminalRef:
    """A terminal as the inventory knows it, and where to reach it."""

    serial: str
    tid: str
    mid: str | None
    url: str
    row: dict[str, Any]


def resolve(conn: Connection, serial: str | None = None, port: str | None = None) -> TerminalRef:
    """The terminal ``serial`` (reached on ``port``, else its recorded link), or the one
    terminal whose recorded link is ``port``."""
    if serial is not None:
        row = get_terminal(conn, serial)
        if row is None:
            raise NotFoundError(f"unknown terminal {serial}")
    elif port is not None:
        found = conn.execute(select(TERMINALS).where(TERMINALS.c.link == port)).all()
        if not found:
            raise NotFoundError(f"no terminal in the inventory has link {port}")
        if len(found) > 1:
            names = ", ".join(r.serial for r in found)
            raise InputError(
                f"{len(found)} terminals have link {port} ({names}): name the terminal"
            )
        row = dict(found[0]._mapping)
    else:
        raise InputError("name a terminal or a link")
    url = port or row["link"]
    if not url:
        raise InputError(f"terminal {row['serial']} has no link URL recorded: give its link")
    if not row["tid"]:
        raise DeviceError(f"terminal {row['serial']} has no TID: it can't be signed on to")
    return TerminalRef(row["serial"], row["tid"], row["mid"] or None, url, row)


class DeviceSession:
    """An open link to one terminal, signed on once (see the module's notes).

    ``master_key``: the fleet's master key, for what is MACed (a download, its commit);
    without it the session can sign on, query and sell, but not push.
    """

    def __init__(
        self,
        ref: TerminalRef,
        *,
        master_key: bytes | None = None,
        baud: int = 115200,
        t2: float = 5.0,
        t1_margin: float = 0.5,
    ) -> None:
        self.ref = ref
        self._key = derive_terminal_key(master_key, ref.serial) if master_key else UNSIGNED
        self._link_args = (ref.url, baud, t2, t1_margin)
        self._link: Link | None = None
        self.host: HostSession
        self.signed: SignOn

    def __enter__(self) -> DeviceSession:
        url, baud, t2, t1_margin = self._link_args
        self._link = Link(url, baud, t2=t2, t1_margin=t1_margin)
        try:
            self.host = HostSession(self._link, self.ref.tid, self._key)
            self.signed = self.host.sign_on()
            self._check_identity()
        except BaseException:
            self._link.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._link is not None:
            self._link.close()

    def _check_identity(self) -> None:
        info, ref = self.signed.info, self.ref
        if info.serial != ref.serial:
            raise IdentityError(
                f"{ref.url} answers as serial {info.serial}, not {ref.serial}: check the link"
            )
        if ref.mid and self.signed.mid != ref.mid:
            raise IdentityError(
                f"{ref.serial} reports MID {self.signed.mid}, the inventory has {ref.mid}"
            )
