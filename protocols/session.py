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
benchmarks. The conversations themselves (which request, which checks, which key, where a
download or a rotation resumes) are the sans-I/O flows of :mod:`protocols.flows`, which the
many-links engine (:mod:`protocols.engine`) runs too; a session runs them over its one
blocking link.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols import messages as m
from protocols.codec import Message
from protocols.feetable import FeeTable
from protocols.flows import (
    Conversation,
    KeyRotation,
    PreparedTable,
    PushResult,
    RotationStep,
    SaleOutcome,
    SignOn,
    run,
)
from protocols.health import HealthInfo
from protocols.keys import KeySource, KeyVersions, TerminalKeyRing
from protocols.link import Link
from protocols.mac import TerminalKey
from protocols.tlv import DownloadStatus
from protocols.values import CardType

__all__ = [
    "HostSession",
    "KeyRotation",
    "PushResult",
    "RotationStep",
    "SaleOutcome",
    "SignOn",
]


class HostSession:
    """Requests to one terminal (TID) over ``link``, signed with the terminal's key.

    ``key``: the terminal's key (bytes, or a :class:`~protocols.mac.TerminalKey`).
    ``keys``: its keys of several versions instead (or as well) — terminal keys, a
    :class:`~protocols.keys.TerminalKeyRing` or a lookup ``version -> TerminalKey | None``;
    then every sign-on picks the one of the version the terminal reports (its current key,
    else its next key), and :attr:`key` is None (signed requests raise
    :class:`~protocols.errors.KeyVersionError` before anything is sent) while the session
    has no key of the terminal's versions or has not signed on yet.

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
        keys: KeySource = (),
    ):
        self.link = link
        self.conversation = Conversation(tid, key, stan, keys=keys)
        if key is None and not self.conversation.ring:
            raise ValueError("give the terminal's key, or its keys=")

    @property
    def tid(self) -> str:
        return self.conversation.tid

    @property
    def key(self) -> bytes | None:
        """The key signed requests use now (None: none of the terminal's versions)."""
        return self.conversation.key

    @property
    def key_version(self) -> int | None:
        """The version of :attr:`key` (None for one bare key given without a version)."""
        return self.conversation.key_version

    @property
    def keys(self) -> TerminalKeyRing:
        """The terminal's keys by version (empty when one bare key was given)."""
        return self.conversation.ring

    @property
    def terminal_keys(self) -> KeyVersions | None:
        """The key versions the terminal reported last (sign-on, key change or
        confirmation)."""
        return self.conversation.terminal_keys

    @property
    def stan(self) -> m.StanCounter:
        return self.conversation.stan

    def use_key(self, versions: KeyVersions) -> bytes | None:
        """Pick the key for a terminal holding ``versions``
        (:meth:`protocols.flows.Conversation.use_key`)."""
        return self.conversation.use_key(versions)

    # -- single exchanges ----------------------------------------------------------------

    def exchange(
        self, request: Message, *, signed: bool = False, key: bytes | None = None
    ) -> Message:
        """Send one request, return the decoded response (any response code).

        With ``signed`` the request is MACed (with ``key``, by default the session's) and
        a response other than ``A0`` must carry a valid MAC under the same key
        (:class:`~protocols.errors.MacError` otherwise).
        """
        flow = self.conversation.exchange(request, signed=signed, key=key)
        return run(flow, self.link.request)

    def sign_on(self) -> SignOn:
        """0800/001: model, serial, firmware, versions, partial download, capabilities;
        health and key versions when the terminal reports them. Picks the key of the
        reported version (:meth:`use_key`)."""
        return run(self.conversation.sign_on(), self.link.request)

    def health(self) -> HealthInfo:
        """0800/303: the terminal's health (battery, printer, card reads, tamper, uptime,
        last reboot, free storage). Unsigned, like sign-on."""
        return run(self.conversation.health(), self.link.request)

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
        table, ``A0`` wrong key, ``F1`` checks failed, ``66`` tampered) and
        :class:`~protocols.errors.LinkError`; after a LinkError, call again on a new link:
        the terminal keeps the blocks it stored.
        """
        flow = self.conversation.push(table, progress, signed_on=signed_on)
        return run(flow, self.link.request)

    # -- key rotation (an addition to v1) ---------------------------------------------------

    def change_key(self, new: TerminalKey) -> KeyVersions:
        """0800/161: give the terminal ``new`` as its next key, wrapped under and signed
        with the session's key (the terminal's current one). Returns the terminal's key
        versions (current unchanged, next = ``new.version``)."""
        return run(self.conversation.change_key(new), self.link.request)

    def confirm_key(self, new: TerminalKey) -> KeyVersions:
        """0800/162, signed with ``new``: the terminal switches to it and drops the old
        key. The session uses ``new`` from then on."""
        return run(self.conversation.confirm_key(new), self.link.request)

    def rotate_key(
        self,
        new: TerminalKey,
        progress: Callable[[RotationStep], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> KeyRotation:
        """Move the terminal to key ``new``: change, then confirm; resumable
        (:meth:`protocols.flows.Conversation.rotate_key` says how). After a
        :class:`~protocols.errors.LinkError`, call again on a new link."""
        flow = self.conversation.rotate_key(new, progress, signed_on=signed_on)
        return run(flow, self.link.request)
