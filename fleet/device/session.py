"""One terminal session: resolve the terminal, open its link once, sign on once, check
who answers. Sync, push, provisioning and verification all run over it.

>>> # with engine.connect() as conn: ref = resolve(conn, serial="PS00000009")
>>> # with DeviceSession(ref, keys=ring) as dev: dev.signed.info.firmware, dev.host.status()

:func:`resolve` is the one lookup of "which terminal, reached how": by serial (its
recorded link, or a given one) or by link alone; the link must be an allowed one
(:func:`protocols.linkurl.check_url`, without ``loop://``), whatever the database holds.
:class:`DeviceSession` opens the link, signs on (0800/001) and checks identity: the
terminal must answer with the serial asked for and, when the inventory has them, the same
MID and its merchant's MCC (the fleet's MCC, never the terminal's, is what fees are checked
with: :class:`IdentityError` otherwise).
It signs with the key of the version the terminal reports, from the session's key ring
(:mod:`fleet.device.keyring`): the terminal's current key, or its next one while a key
change awaits confirmation.
Link and protocol failures are raised as they are (:class:`~protocols.errors.ProtocolError`,
:class:`OSError`): each operation words and records them its own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from fleet.core.errors import FleetError, InputError, JobError, NotFoundError
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.inventory import get_terminal
from protocols.errors import LinkError
from protocols.keys import KeyVersions
from protocols.link import Link
from protocols.linkurl import check_url
from protocols.session import HostSession, SignOn

if TYPE_CHECKING:
    from fleet.device.keyring import KeyRing

__all__ = [
    "DeviceError",
    "DeviceSession",
    "IdentityError",
    "TerminalRef",
    "check_identity",
    "resolve",
    "resolve_many",
]

UNSIGNED = bytes(16)
"""Sign-on is not MACed (wire protocol §5): a session that only signs on needs no key."""


class DeviceError(JobError):
    """Talking to a terminal failed; ``retryable`` when a new link may do better (the link
    broke), not when the terminal refused or disagreed."""

    reason: str | None = None
    """What kind of failure, for a program, kept when one error wraps another:
    ``unissued_key`` (the terminal holds a key the fleet never issued), ``missing_key``."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        retryable: bool = False,
        reason: str | None = None,
    ):
        super().__init__(message, where=where)
        self.retryable = retryable
        if reason is not None:
            self.reason = reason


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
    mcc: int | None = None
    """Its merchant's MCC in the fleet (None: no merchant)."""


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
    mcc = None
    if row.get("merchant_id"):
        mcc = conn.execute(
            select(MERCHANTS.c.mcc).where(MERCHANTS.c.id == row["merchant_id"])
        ).scalar()
    return _ref(row, mcc, port)


def _ref(row: dict[str, Any], mcc: int | None, port: str | None = None) -> TerminalRef:
    url = port or row["link"]
    if not url:
        raise InputError(f"terminal {row['serial']} has no link URL recorded: give its link")
    try:  # a link recorded before the allow-list, or given now: refused before it is opened
        check_url(url, loop=False)
    except LinkError as exc:
        raise InputError(str(exc), where=row["serial"]) from None
    if not row["tid"]:
        raise DeviceError(f"terminal {row['serial']} has no TID: it can't be signed on to")
    return TerminalRef(row["serial"], row["tid"], row["mid"] or None, url, row, mcc)


def resolve_many(conn: Connection, serials: Iterable[str]) -> dict[str, TerminalRef | FleetError]:
    """:func:`resolve` of many terminals by serial in one query: each serial's reference,
    or the error :func:`resolve` would raise for it."""
    wanted = list(dict.fromkeys(serials))
    found: dict[str, TerminalRef | FleetError] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(TERMINALS, MERCHANTS.c.mcc.label("merchant_mcc"))
            .select_from(TERMINALS.outerjoin(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id))
            .where(TERMINALS.c.serial.in_(chunk))
        ).all()
        for r in rows:
            row = dict(r._mapping)
            mcc = row.pop("merchant_mcc")
            try:
                found[row["serial"]] = _ref(row, mcc if row.get("merchant_id") else None)
            except FleetError as exc:
                found[row["serial"]] = exc
    for serial in wanted:
        found.setdefault(serial, NotFoundError(f"unknown terminal {serial}"))
    return found


class DeviceSession:
    """An open link to one terminal, signed on once (see the module's notes).

    ``keys``: the fleet's master keys, for what is MACed (a download, its commit, a key
    change); without them the session can sign on, query and sell, but not push.
    """

    def __init__(
        self,
        ref: TerminalRef,
        *,
        keys: KeyRing | None = None,
        baud: int = 115200,
        t2: float = 5.0,
        t1_margin: float = 0.5,
    ) -> None:
        self.ref = ref
        self.keys = keys
        self._link_args = (ref.url, baud, t2, t1_margin)
        self._link: Link | None = None
        self.host: HostSession
        self.signed: SignOn

    @property
    def held(self) -> KeyVersions:
        """The key versions the terminal reported at sign-on (current, next)."""
        return self.signed.key_versions

    def key_columns(self) -> dict[str, int]:
        """The terminal row's columns of :attr:`held`."""
        return {"key_version": self.held.current, "key_next": self.held.next}

    def check_signing(self) -> None:
        """The session can sign for the terminal: a key of its version, issued by the fleet
        (:meth:`~fleet.device.keyring.KeyRing.check_signing`)."""
        if self.keys is None:
            raise DeviceError("no master key given: this session can't sign", where=self.ref.serial)
        self.keys.check_signing(self.ref.serial, self.held)

    def __enter__(self) -> DeviceSession:
        url, baud, t2, t1_margin = self._link_args
        self._link = Link(url, baud, t2=t2, t1_margin=t1_margin)
        keys = self.keys.terminal_keys(self.ref.serial) if self.keys else []
        try:
            if keys:
                self.host = HostSession(self._link, self.ref.tid, keys=keys)
            else:
                self.host = HostSession(self._link, self.ref.tid, UNSIGNED)
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
        check_identity(self.ref, self.signed)


def check_identity(ref: TerminalRef, signed: SignOn) -> None:
    """The terminal that signed on is ``ref``: same serial and, when the inventory has
    them, the same MID and its merchant's MCC (:class:`IdentityError` otherwise)."""
    info = signed.info
    if info.serial != ref.serial:
        raise IdentityError(
            f"{ref.url} answers as serial {info.serial}, not {ref.serial}: check the link"
        )
    if ref.mid and signed.mid != ref.mid:
        raise IdentityError(f"{ref.serial} reports MID {signed.mid}, the inventory has {ref.mid}")
    if ref.mcc is not None and info.mcc != ref.mcc:
        raise IdentityError(
            f"{ref.serial} reports MCC {info.mcc:04d}, its merchant "
            f"{ref.row.get('merchant_id')} has MCC {ref.mcc:04d} in the fleet: "
            "configure the terminal"
        )
