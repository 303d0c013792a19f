"""The host's side of a conversation with one terminal, over a :class:`~protocols.link.Link`.

:class:`HostSession` numbers requests (STAN), signs and verifies MACs where the catalog
wants them, and turns responses other than ``00`` into :class:`~protocols.errors.RefusedError`
carrying the response code. Its :meth:`~HostSession.push` downloads a fee table and
**resumes**: it signs on first and starts from the block the terminal reports in tag 07,
so a push broken by a cut link is simply called again on a new link.

Additions to v1 (docs/protocol.md): :meth:`~HostSession.health` polls the terminal's
health (0800/303); :meth:`~HostSession.rotate_key` changes its MAC key (0800/161 then
0800/162) and resumes like a push: it signs on first and carries on from the step the
terminal reports. A session given its terminal's keys of several versions (``keys=``)
picks the one the terminal reports at every sign-on, so pushes, sync and sales keep
working in the middle of a rotation.

Used by the fleet tool, the simulator's cash register (``possim sale``), the tests and the
benchmarks. (Over 400 lines: one class holds every exchange a host makes with a terminal,
v1's and the additions, so that a caller keeps one object per terminal.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import KeyVersionError, RefusedError
from protocols.feetable import FeeTable
from protocols.health import HealthInfo
from protocols.keys import KeyChange, KeyConfirm, KeyVersions
from protocols.link import Link
from protocols.mac import TerminalKey
from protocols.tlv import DownloadStatus, SaleRequest, SaleResult, SignOnInfo
from protocols.values import CardType

__all__ = [
    "HostSession",
    "KeyRotation",
    "PushResult",
    "RotationStep",
    "SaleOutcome",
    "SignOn",
]

V1_KEYS = KeyVersions(current=1)
"""What a terminal that reports no key versions (a v1 terminal) holds: version 1."""


@dataclass(frozen=True, slots=True)
class SignOn:
    """What a sign-on (0800/001) told the host.

    ``health`` and ``keys`` are None when the terminal does not send those tags (v1).
    """

    mid: str
    info: SignOnInfo
    health: HealthInfo | None = None
    keys: KeyVersions | None = None

    @property
    def key_versions(self) -> KeyVersions:
        """The terminal's key versions; a v1 terminal holds version 1."""
        return self.keys or V1_KEYS


@dataclass(frozen=True, slots=True)
class PushResult:
    """The outcome of :meth:`HostSession.push`."""

    version: int
    blocks: int
    """Blocks of the table."""
    resumed_from: int
    """Block the push started at (0 = from the start; > 0 = resumed a partial download)."""
    sent: int
    """Block messages sent in this call (repeats after 77 included)."""
    already: bool
    """The terminal already had the version (active or pending): nothing was sent."""


class RotationStep(StrEnum):
    """Progress of :meth:`HostSession.rotate_key`, reported after each step."""

    SIGNED_ON = "signed on"
    CHANGED = "changed"
    """The terminal holds the new key as its next key (0800/161 answered 00)."""
    CONFIRMED = "confirmed"
    """The terminal uses the new key and has dropped the old one (0800/162 answered 00)."""


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The outcome of :meth:`HostSession.rotate_key`."""

    version: int
    """The key version the terminal holds now."""
    previous: int
    """The key version the terminal held when the call signed on."""
    changed: bool
    """A key change (0800/161) was sent and accepted in this call (False when the
    terminal already held the new key as its next one: only the confirmation was sent)."""
    already: bool
    """The terminal already used the new key: nothing was sent."""


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    """A 0210: code, and for an approval the fee, net amount and approval code."""

    code: str
    amount: int
    fee: int | None
    net: int | None
    approval: str | None
    table_version: int | None

    @property
    def approved(self) -> bool:
        return self.code == m.ResponseCode.APPROVED


class HostSession:
    """Requests to one terminal (TID) over ``link``, signed with the terminal's key.

    ``key``: the terminal's key (bytes, or a :class:`~protocols.mac.TerminalKey`).
    ``keys``: its keys of several versions instead (or as well); then every sign-on picks
    the one of the version the terminal reports (its current key, else its next key), and
    :attr:`key` is None (signed requests raise :class:`~protocols.errors.KeyVersionError`)
    while the session has no key of the terminal's versions or has not signed on yet.

    STANs start at a random value so that a restarted host never repeats the last STAN a
    terminal saw (which it would take for a resend).
    """

    def __init__(
        self,
        link: Link,
        tid: str,
        key: bytes | TerminalKey | None = None,
        stan: m.StanCounter | None = None,
        *,
        keys: Iterable[TerminalKey] = (),
    ):
        self.link = link
        self.tid = tid
        self.keys: dict[int, bytes] = {k.version: k.key for k in keys}
        self.key: bytes | None
        self.key_version: int | None
        if isinstance(key, TerminalKey):
            self.keys.setdefault(key.version, key.key)
            self.key, self.key_version = key.key, key.version
        else:
            self.key, self.key_version = key, None
        if self.key is None and not self.keys:
            raise ValueError("give the terminal's key, or its keys=")
        self.terminal_keys: KeyVersions | None = None
        """The key versions the terminal reported at the last sign-on."""
        self.stan = stan or m.StanCounter(secrets.randbelow(999_999) + 1)

    def use_key(self, versions: KeyVersions) -> bytes | None:
        """Pick, among :attr:`keys`, the key for a terminal holding ``versions``: its
        current key, else its next one (a terminal accepts both until it confirms).
        Without :attr:`keys` (one key given) nothing changes. Returns the key chosen."""
        self.terminal_keys = versions
        if not self.keys:
            return self.key
        for version in (versions.current, versions.next):
            if version and version in self.keys:
                self.key, self.key_version = self.keys[version], version
                return self.key
        self.key = self.key_version = None
        return None

    def _key_for_request(self, key: bytes | None) -> bytes:
        if key is not None:
            return key
        if self.key is None:
            held = self.terminal_keys
            where = (
                "sign on first"
                if held is None
                else f"the terminal holds {held.current}" + (f" and {held.next}" * held.pending)
            )
            raise KeyVersionError(
                f"{self.tid}: no key to sign with: the session has key versions "
                f"{sorted(self.keys)}; {where}"
            )
        return self.key

    # -- single exchanges ----------------------------------------------------------------

    def exchange(
        self, request: Message, *, signed: bool = False, key: bytes | None = None
    ) -> Message:
        """Send one request, return the decoded response (any response code).

        With ``signed`` the request is MACed (with ``key``, by default the session's) and
        a response other than ``A0`` must carry a valid MAC under the same key
        (:class:`~protocols.errors.MacError` otherwise).
        """
        mac_key = self._key_for_request(key) if signed else b""
        if signed:
            request = m.sign(request, mac_key)
        response = decode(self.link.request(encode(request)))
        if response.get(11) != request.get(11):
            raise RefusedError(
                f"response STAN {response.get(11)!r} does not echo {request.get(11)!r}",
                code=str(response.get(39, "")),
                field=11,
            )
        if signed and response.get(39) != m.ResponseCode.MAC_FAILED:
            m.verify(response, mac_key)
        return response

    def _ok(
        self, request: Message, *, signed: bool = False, key: bytes | None = None, what: str
    ) -> Message:
        response = self.exchange(request, signed=signed, key=key)
        code = response.get(39)
        if code != m.ResponseCode.APPROVED:
            raise _refused(what, response)
        return response

    def sign_on(self) -> SignOn:
        """0800/001: model, serial, firmware, versions, partial download, capabilities;
        health and key versions when the terminal reports them. Picks the key of the
        reported version (:meth:`use_key`)."""
        rsp = self._ok(m.sign_on(self.stan.next(), self.tid), what="sign-on")
        tlv = rsp.binary(62)
        signed_on = SignOn(
            mid=rsp.text(42),
            info=SignOnInfo.from_tlv(tlv),
            health=HealthInfo.from_tlv_optional(tlv),
            keys=KeyVersions.from_tlv_optional(tlv),
        )
        self.use_key(signed_on.key_versions)
        return signed_on

    def health(self) -> HealthInfo:
        """0800/303: the terminal's health (battery, printer, card reads, tamper, uptime,
        last reboot, free storage). Unsigned, like sign-on."""
        rsp = self._ok(m.health(self.stan.next(), self.tid), what="health poll")
        return HealthInfo.from_tlv(rsp.binary(62))

    def echo(self) -> None:
        """0800/301: line test."""
        run(self.conversation.echo(), self.link.request)

    def status(self) -> DownloadStatus:
        """0800/362: active and pending versions and where a download would resume."""
        return run(self.conversation.status(), self.link.request)

    def sale(
        self,
        amount: int,
        card_type: CardType | int,
        entry_mode: m.EntryMode | str = m.EntryMode.CHIP,
        currency: int = 156,
    ) -> SaleOutcome:
        """0200 sale: the terminal prices it with its active table."""
        flow = self.conversation.sale(amount, card_type, entry_mode, currency)
        return run(flow, self.link.request)

    # -- the download ----------------------------------------------------------------------

    def push(
        self,
        table: FeeTable | PreparedTable,
        progress: Callable[[int, int], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> PushResult:
        """Download ``table`` and commit it, resuming a partial download of the same version
        (:meth:`protocols.flows.Conversation.push` says how).

        Raises :class:`~protocols.errors.RefusedError` (e.g. ``76`` older than the active
        table, ``A0`` wrong key, ``F1`` checks failed) and
        :class:`~protocols.errors.LinkError`; after a LinkError, call again on a new link:
        the terminal keeps the blocks it stored.
        """
        if signed_on is not None:
            self.use_key(signed_on.key_versions)
        info = (signed_on or self.sign_on()).info
        version = table.version
        blocks = table.blocks()
        count = len(blocks)
        if version in (info.active_version, info.pending_version):
            return PushResult(version, count, count, 0, already=True)
        partial = info.partial
        start = partial.next_block if partial.version == version else 0
        start = min(start, count)
        index, sent = start, 0
        if progress is not None:
            progress(start, count)
        budget = 2 * count + 8  # 77s that keep moving us around mean the terminal is confused
        while index < count:
            if sent >= budget:
                raise RefusedError(
                    f"terminal keeps asking for other blocks (at {index} of {count} after "
                    f"{sent} sends)",
                    code=m.ResponseCode.OUT_OF_ORDER,
                )
            req = m.block(self.stan.next(), self.tid, version, index, count, blocks[index])
            rsp = self.exchange(req, signed=True)
            sent += 1
            code = rsp.get(39)
            if code not in (m.ResponseCode.APPROVED, m.ResponseCode.OUT_OF_ORDER):
                raise _refused(f"block {index} of {count}", rsp)
            nxt = m.block_address(rsp)
            if nxt.version != version or nxt.count != count or nxt.index > count:
                raise RefusedError(
                    f"block {index}: terminal answered for {nxt}, not version {version} of "
                    f"{count} blocks",
                    code=str(code),
                    field=61,
                )
            index = nxt.index
            if progress is not None:
                progress(index, count)
        commit = m.commit(self.stan.next(), self.tid, version, count, table.digest())
        self._ok(commit, signed=True, what=f"commit of version {version}")
        return PushResult(version, count, start, sent, already=False)

    # -- key rotation (an addition to v1) ---------------------------------------------------

    def change_key(self, new: TerminalKey) -> KeyVersions:
        """0800/161: give the terminal ``new`` as its next key, wrapped under and signed
        with the session's key (the terminal's current one). Returns the terminal's key
        versions (current unchanged, next = ``new.version``)."""
        current = self._key_for_request(None)
        change = KeyChange.build(current, new)
        req = m.key_change(self.stan.next(), self.tid, change.to_tlv())
        rsp = self._ok(req, signed=True, what=f"key change to version {new.version}")
        return KeyVersions.from_tlv(rsp.binary(62))

    def confirm_key(self, new: TerminalKey) -> KeyVersions:
        """0800/162, signed with ``new``: the terminal switches to it and drops the old
        key. The session uses ``new`` from then on."""
        req = m.key_confirm(self.stan.next(), self.tid, KeyConfirm(new.version).to_tlv())
        rsp = self._ok(req, signed=True, key=new.key, what=f"key confirmation of {new.version}")
        versions = KeyVersions.from_tlv(rsp.binary(62))
        self.keys[new.version] = new.key
        self.key, self.key_version = new.key, new.version
        return versions

    def rotate_key(
        self,
        new: TerminalKey,
        progress: Callable[[RotationStep], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> KeyRotation:
        """Move the terminal to key ``new``: change, then confirm; resumable.

        Signs on first (or uses ``signed_on``, which must be fresh) and goes on from what
        the terminal reports: already on ``new`` → nothing to send; ``new`` is its next
        key → confirm only; otherwise change (signed with its current key, which the
        session must have: :class:`~protocols.errors.KeyVersionError` if not) and confirm.
        After a :class:`~protocols.errors.LinkError`, call again on a new link.
        ``progress(step)`` is called after each step.
        """
        if signed_on is None:
            signed_on = self.sign_on()
        else:
            self.use_key(signed_on.key_versions)
        if progress is not None:
            progress(RotationStep.SIGNED_ON)
        if signed_on.keys is None:
            raise KeyVersionError(
                f"{self.tid}: the terminal reports no key versions (a v1 terminal cannot "
                "change keys)"
            )
        held = signed_on.keys
        if held.current == new.version:
            self.keys[new.version] = new.key
            self.key, self.key_version = new.key, new.version
            return KeyRotation(new.version, held.current, changed=False, already=True)
        if held.current > new.version:
            raise KeyVersionError(
                f"{self.tid}: the terminal holds key version {held.current}, newer than "
                f"{new.version}"
            )
        changed = held.next != new.version
        if changed:
            if self.keys:  # (a session given one bare key takes it for the current one)
                if held.current not in self.keys:
                    raise KeyVersionError(
                        f"{self.tid}: the terminal holds key version {held.current}; this "
                        f"session has versions {sorted(self.keys)}"
                    )
                self.key, self.key_version = self.keys[held.current], held.current
            self.change_key(new)
            if progress is not None:
                progress(RotationStep.CHANGED)
        self.confirm_key(new)
        if progress is not None:
            progress(RotationStep.CONFIRMED)
        return KeyRotation(new.version, held.current, changed=changed, already=False)


def _refused(what: str, response: Message) -> RefusedError:
    code = str(response.get(39, "??"))
    try:
        meaning = m.ResponseCode(code).meaning
    except ValueError:
        meaning = "unknown response code"
    return RefusedError(f"{what} refused: {code} ({meaning})", code=code)
