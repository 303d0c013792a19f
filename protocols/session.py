"""The host's side of a conversation with one terminal, over a :class:`~protocols.link.Link`.

:class:`HostSession` numbers requests (STAN), signs and verifies MACs where the catalog
wants them, and turns responses other than ``00`` into :class:`~protocols.errors.RefusedError`
carrying the response code. Its :meth:`~HostSession.push` downloads a fee table and
**resumes**: it signs on first and starts from the block the terminal reports in tag 07,
so a push broken by a cut link is simply called again on a new link.

Used by the fleet tool, the simulator's cash register (``possim sale``), the tests and the
benchmarks. The conversations themselves (which request, which checks, where a download
resumes) are the sans-I/O flows of :mod:`protocols.flows`, which the many-links engine
(:mod:`protocols.engine`) runs too; a session runs them over its one blocking link.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols import messages as m
from protocols.codec import Message
from protocols.feetable import FeeTable
from protocols.flows import (
    Conversation,
    PreparedTable,
    PushResult,
    SaleOutcome,
    SignOn,
    run,
)
from protocols.link import Link
from protocols.tlv import DownloadStatus
from protocols.values import CardType

__all__ = ["HostSession", "PushResult", "SaleOutcome", "SignOn"]


class HostSession:
    """Requests to one terminal (TID) over ``link``, signed with the terminal's ``key``.

    STANs start at a random value so that a restarted host never repeats the last STAN a
    terminal saw (which it would take for a resend).
    """

    def __init__(self, link: Link, tid: str, key: bytes, stan: m.StanCounter | None = None):
        self.link = link
        self.conversation = Conversation(tid, key, stan)

    @property
    def tid(self) -> str:
        return self.conversation.tid

    @property
    def key(self) -> bytes:
        return self.conversation.key

    @property
    def stan(self) -> m.StanCounter:
        return self.conversation.stan

    # -- single exchanges ----------------------------------------------------------------

    def exchange(self, request: Message, *, signed: bool = False) -> Message:
        """Send one request, return the decoded response (any response code).

        With ``signed`` the request is MACed and a response other than ``A0`` must carry a
        valid MAC (:class:`~protocols.errors.MacError` otherwise).
        """
        return run(self.conversation.exchange(request, signed=signed), self.link.request)

    def _ok(self, request: Message, *, signed: bool = False, what: str) -> Message:
        """:meth:`exchange`, refusing any response code but ``00``."""
        return run(self.conversation.ok(request, signed=signed, what=what), self.link.request)

    def sign_on(self) -> SignOn:
        """0800/001: model, serial, firmware, versions, partial download, capabilities."""
        return run(self.conversation.sign_on(), self.link.request)

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
        flow = self.conversation.push(table, progress, signed_on=signed_on)
        return run(flow, self.link.request)
