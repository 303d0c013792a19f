"""The host's side of a conversation with one terminal, over a :class:`~protocols.link.Link`.

:class:`HostSession` numbers requests (STAN), signs and verifies MACs where the catalog
wants them, and turns responses other than ``00`` into :class:`~protocols.errors.RefusedError`
carrying the response code. Its :meth:`~HostSession.push` downloads a fee table and
**resumes**: it signs on first and starts from the block the terminal reports in tag 07,
so a push broken by a cut link is simply called again on a new link.

Used by the fleet tool, the simulator's cash register (``possim sale``), the tests and the
benchmarks.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import RefusedError
from protocols.feetable import FeeTable
from protocols.link import Link
from protocols.tlv import DownloadStatus, SaleRequest, SaleResult, SignOnInfo
from protocols.values import CardType

__all__ = ["HostSession", "PushResult", "SaleOutcome", "SignOn"]


@dataclass(frozen=True, slots=True)
class SignOn:
    """What a sign-on (0800/001) told the host."""

    mid: str
    info: SignOnInfo


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
    """Requests to one terminal (TID) over ``link``, signed with the terminal's ``key``.

    STANs start at a random value so that a restarted host never repeats the last STAN a
    terminal saw (which it would take for a resend).
    """

    def __init__(self, link: Link, tid: str, key: bytes, stan: m.StanCounter | None = None):
        self.link = link
        self.tid = tid
        self.key = key
        self.stan = stan or m.StanCounter(secrets.randbelow(999_999) + 1)

    # -- single exchanges ----------------------------------------------------------------

    def exchange(self, request: Message, *, signed: bool = False) -> Message:
        """Send one request, return the decoded response (any response code).

        With ``signed`` the request is MACed and a response other than ``A0`` must carry a
        valid MAC (:class:`~protocols.errors.MacError` otherwise).
        """
        if signed:
            request = m.sign(request, self.key)
        response = decode(self.link.request(encode(request)))
        if response.get(11) != request.get(11):
            raise RefusedError(
                f"response STAN {response.get(11)!r} does not echo {request.get(11)!r}",
                code=str(response.get(39, "")),
                field=11,
            )
        if signed and response.get(39) != m.ResponseCode.MAC_FAILED:
            m.verify(response, self.key)
        return response

    def _ok(self, request: Message, *, signed: bool = False, what: str) -> Message:
        response = self.exchange(request, signed=signed)
        code = response.get(39)
        if code != m.ResponseCode.APPROVED:
            raise _refused(what, response)
        return response

    def sign_on(self) -> SignOn:
        """0800/001: model, serial, firmware, versions, partial download, capabilities."""
        rsp = self._ok(m.sign_on(self.stan.next(), self.tid), what="sign-on")
        return SignOn(mid=rsp.text(42), info=SignOnInfo.from_tlv(rsp.binary(62)))

    def echo(self) -> None:
        """0800/301: line test."""
        self._ok(m.echo(self.stan.next(), self.tid), what="echo")

    def status(self) -> DownloadStatus:
        """0800/362: active and pending versions and where a download would resume."""
        rsp = self._ok(m.download_status(self.stan.next(), self.tid), what="download status")
        return DownloadStatus.from_tlv(rsp.binary(62))

    def sale(
        self,
        amount: int,
        card_type: CardType | int,
        entry_mode: m.EntryMode | str = m.EntryMode.CHIP,
        currency: int = 156,
    ) -> SaleOutcome:
        """0200 sale: the terminal prices it with its active table."""
        tlv = SaleRequest(CardType(card_type)).to_tlv()
        req = m.sale(self.stan.next(), self.tid, amount, tlv, entry_mode, currency)
        rsp = self.exchange(req)
        code = str(rsp.get(39))
        if code != m.ResponseCode.APPROVED:
            return SaleOutcome(code, amount, None, None, None, None)
        result = SaleResult.from_tlv(rsp.binary(62))
        return SaleOutcome(
            code=code,
            amount=m.parse_amount(rsp),
            fee=m.parse_fee(rsp),
            net=result.net_amount,
            approval=rsp.text(38),
            table_version=result.active_version,
        )

    # -- the download ----------------------------------------------------------------------

    def push(
        self,
        table: FeeTable,
        progress: Callable[[int, int], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> PushResult:
        """Download ``table`` and commit it, resuming a partial download of the same version.

        ``progress(stored, count)`` is called with the blocks the terminal reports stored:
        once at the start (a resumed download starts above 0) and after every block.

        Raises :class:`~protocols.errors.RefusedError` (e.g. ``76`` older than the active
        table, ``A0`` wrong key, ``F1`` checks failed) and
        :class:`~protocols.errors.LinkError`; after a LinkError, call again on a new link:
        the terminal keeps the blocks it stored.

        ``signed_on``: a sign-on the caller has just made on this link, used instead of a
        new one (it must be fresh: the download resumes from the block it reports).
        """
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


def _refused(what: str, response: Message) -> RefusedError:
    code = str(response.get(39, "??"))
    try:
        meaning = m.ResponseCode(code).meaning
    except ValueError:
        meaning = "unknown response code"
    return RefusedError(f"{what} refused: {code} ({meaning})", code=code)
