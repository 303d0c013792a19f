"""The host's conversations with one terminal, sans I/O: sign-on, status, sale, download.

A flow is a generator that **yields request bodies and is sent the response bodies**
(``Generator[bytes, bytes, Result]``); it builds every request, signs and checks MACs,
checks that each response echoes its request's STAN, follows the terminal's answers
(resume from tag 07, field 61 after ``00``/``77``) and returns the result. It never
touches a link: :class:`protocols.session.HostSession` runs flows over one blocking
:class:`~protocols.link.Link` (:func:`run`), and :mod:`protocols.engine` runs thousands
of them at once from one selector loop. The rules are written once, here.

Download blocks are prepared once per table (:class:`PreparedTable`) and encoded and
MAC'd once per table and terminal key (:meth:`PreparedTable.signed`): block ``i`` of a
prepared table always has STAN ``base + i`` and the commit ``base + count``, so a resend
of a block is the same bytes, and the conversation's own STANs (sign-on, status, sale)
avoid that range.

>>> from protocols.codec import decode, encode
>>> from protocols import messages as m
>>> conv = Conversation("TERM0001", bytes(16), m.StanCounter(41))
>>> flow = conv.echo()
>>> request = decode(next(flow)); request.mti, request[11], request[60]
('0800', '000041', '00000000301')
>>> try:
...     flow.send(encode(m.response_to(request, m.ResponseCode.APPROVED)))
... except StopIteration:
...     print("echoed")
echoed
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Final, TypeVar

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import DecodeError, RefusedError
from protocols.feetable import FeeTable
from protocols.tlv import DownloadStatus, SaleRequest, SaleResult, SignOnInfo
from protocols.values import CardType

__all__ = [
    "Conversation",
    "Flow",
    "PreparedTable",
    "PushResult",
    "SaleOutcome",
    "SignOn",
    "refused",
    "run",
]

T = TypeVar("T")
Flow = Generator[bytes, bytes, T]
"""Yields request bodies, is sent response bodies, returns the result."""

_MAX_STAN: Final = 999_999


@dataclass(frozen=True, slots=True)
class SignOn:
    """What a sign-on (0800/001) told the host."""

    mid: str
    info: SignOnInfo


@dataclass(frozen=True, slots=True)
class PushResult:
    """The outcome of a download (:meth:`Conversation.push`)."""

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


def run(flow: Flow[T], request: Callable[[bytes], bytes]) -> T:
    """Run ``flow`` to its end with a blocking ``request(body) -> response body``."""
    try:
        body = next(flow)
        while True:
            body = flow.send(request(body))
    except StopIteration as done:
        result: T = done.value
        return result


def _binary(response: Message, field: int) -> bytes:
    """A binary field the answer must carry (DecodeError when it is missing)."""
    value = response.get(field)
    if not isinstance(value, bytes):
        raise DecodeError(f"{response.mti} lacks field {field}", field=field)
    return value


def _text(response: Message, field: int) -> str:
    """A text field the answer must carry (DecodeError when it is missing)."""
    value = response.get(field)
    if not isinstance(value, str):
        raise DecodeError(f"{response.mti} lacks field {field}", field=field)
    return value


def refused(what: str, response: Message) -> RefusedError:
    """``what`` was answered with a code other than ``00``, as a typed error."""
    code = str(response.get(39, "??"))
    try:
        meaning = m.ResponseCode(code).meaning
    except ValueError:
        meaning = "unknown response code"
    return RefusedError(f"{what} refused: {code} ({meaning})", code=code)


class PreparedTable:
    """A fee table's blocks and digest, computed once; its signed requests, once per key.

    ``base`` is the STAN of block 0 (random by default); the signed requests of the last
    ``keep`` keys are kept (a fleet pushes one table to many terminals, each with its own
    key: the cache serves resends and retries, not other terminals).

    >>> from protocols.feetable import FeeRule, FeeTable
    >>> from datetime import UTC, datetime
    >>> table = FeeTable(3, datetime(2026, 1, 1, tzinfo=UTC), 156, (FeeRule(0, 0, 9999, 6000),))
    >>> prepared = PreparedTable(table, base=500)
    >>> prepared.count, prepared.stans
    (1, range(500, 502))
    >>> blocks, commit = prepared.signed(bytes(16), "TERM0001")
    >>> decode(blocks[0])[11], decode(commit)[11]
    ('000500', '000501')
    """

    def __init__(self, table: FeeTable, *, base: int | None = None, keep: int = 64) -> None:
        self.table = table
        self.version = table.version
        self.blocks = table.blocks()
        self.count = len(self.blocks)
        self.digest = table.digest()
        top = _MAX_STAN - self.count
        self.base = base if base is not None else 1 + secrets.randbelow(top)
        if not 1 <= self.base <= top:
            raise ValueError(f"STAN base {self.base} leaves no room for {self.count + 1} STANs")
        self.stans = range(self.base, self.base + self.count + 1)
        """STANs of the blocks and the commit: other requests avoid them."""
        self._keep = keep
        self._signed: OrderedDict[tuple[bytes, str], tuple[list[bytes], bytes]] = OrderedDict()

    def signed(self, key: bytes, tid: str) -> tuple[list[bytes], bytes]:
        """The encoded, MAC'd block requests and commit request for one terminal."""
        cache_key = (key, tid)
        hit = self._signed.get(cache_key)
        if hit is not None:
            self._signed.move_to_end(cache_key)
            return hit
        version, count, base = self.version, self.count, self.base
        blocks = [
            encode(m.sign(m.block(base + i, tid, version, i, count, data), key))
            for i, data in enumerate(self.blocks)
        ]
        commit = encode(m.sign(m.commit(base + count, tid, version, count, self.digest), key))
        self._signed[cache_key] = hit = (blocks, commit)
        if len(self._signed) > self._keep:
            self._signed.popitem(last=False)
        return hit


class Conversation:
    """The host's side of a conversation with one terminal (TID), signed with ``key``.

    STANs start at a random value so that a restarted host never repeats the last STAN a
    terminal saw (which it would take for a resend).
    """

    def __init__(self, tid: str, key: bytes, stan: m.StanCounter | None = None) -> None:
        self.tid = tid
        self.key = key
        self.stan = stan or m.StanCounter(secrets.randbelow(_MAX_STAN) + 1)
        self._avoid: range = range(0)

    def next_stan(self) -> int:
        """The next STAN of the counter, skipping those of a prepared table being pushed."""
        stan = self.stan.next()
        while stan in self._avoid:
            stan = self.stan.next()
        return stan

    # -- single exchanges ----------------------------------------------------------------

    def exchange(self, request: Message, *, signed: bool = False) -> Flow[Message]:
        """One request → the decoded response (any response code).

        With ``signed`` the request is MACed and a response other than ``A0`` must carry a
        valid MAC (:class:`~protocols.errors.MacError` otherwise).
        """
        if signed:
            request = m.sign(request, self.key)
        return self.exchange_encoded(encode(request), str(request.get(11)), signed=signed)

    def exchange_encoded(self, body: bytes, stan: str, *, signed: bool) -> Flow[Message]:
        """:meth:`exchange` for a request already encoded (and signed) with STAN ``stan``."""
        response = decode((yield body))
        if response.get(11) != stan:
            raise RefusedError(
                f"response STAN {response.get(11)!r} does not echo {stan!r}",
                code=str(response.get(39, "")),
                field=11,
            )
        if signed and response.get(39) != m.ResponseCode.MAC_FAILED:
            m.verify(response, self.key)
        return response

    def ok(self, request: Message, *, signed: bool = False, what: str) -> Flow[Message]:
        """:meth:`exchange`, refusing any response code but ``00``."""
        response = yield from self.exchange(request, signed=signed)
        if response.get(39) != m.ResponseCode.APPROVED:
            raise refused(what, response)
        return response

    def sign_on(self) -> Flow[SignOn]:
        """0800/001: model, serial, firmware, versions, partial download, capabilities."""
        rsp = yield from self.ok(m.sign_on(self.next_stan(), self.tid), what="sign-on")
        return SignOn(mid=_text(rsp, 42), info=SignOnInfo.from_tlv(_binary(rsp, 62)))

    def echo(self) -> Flow[None]:
        """0800/301: line test."""
        yield from self.ok(m.echo(self.next_stan(), self.tid), what="echo")

    def status(self) -> Flow[DownloadStatus]:
        """0800/362: active and pending versions and where a download would resume."""
        request = m.download_status(self.next_stan(), self.tid)
        rsp = yield from self.ok(request, what="download status")
        return DownloadStatus.from_tlv(_binary(rsp, 62))

    def sale(
        self,
        amount: int,
        card_type: CardType | int,
        entry_mode: m.EntryMode | str = m.EntryMode.CHIP,
        currency: int = 156,
    ) -> Flow[SaleOutcome]:
        """0200 sale: the terminal prices it with its active table."""
        tlv = SaleRequest(CardType(card_type)).to_tlv()
        req = m.sale(self.next_stan(), self.tid, amount, tlv, entry_mode, currency)
        rsp = yield from self.exchange(req)
        code = str(rsp.get(39))
        if code != m.ResponseCode.APPROVED:
            return SaleOutcome(code, amount, None, None, None, None)
        result = SaleResult.from_tlv(_binary(rsp, 62))
        return SaleOutcome(
            code=code,
            amount=m.parse_amount(rsp),
            fee=m.parse_fee(rsp),
            net=result.net_amount,
            approval=_text(rsp, 38),
            table_version=result.active_version,
        )

    # -- the download ----------------------------------------------------------------------

    def push(
        self,
        table: FeeTable | PreparedTable,
        progress: Callable[[int, int], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> Flow[PushResult]:
        """Download ``table`` and commit it, resuming a partial download of the same version.

        ``progress(stored, count)`` is called with the blocks the terminal reports stored:
        once at the start (a resumed download starts above 0) and after every block.

        Raises :class:`~protocols.errors.RefusedError` (e.g. ``76`` older than the active
        table, ``A0`` wrong key, ``F1`` checks failed) and, from the driver,
        :class:`~protocols.errors.LinkError`; after a LinkError, run it again on a new
        link: the terminal keeps the blocks it stored.

        ``signed_on``: a sign-on the caller has just made on this link, used instead of a
        new one (it must be fresh: the download resumes from the block it reports).
        """
        prepared = table if isinstance(table, PreparedTable) else PreparedTable(table)
        self._avoid = prepared.stans
        info = (signed_on or (yield from self.sign_on())).info
        version, count = prepared.version, prepared.count
        if version in (info.active_version, info.pending_version):
            return PushResult(version, count, count, 0, already=True)
        partial = info.partial
        start = partial.next_block if partial.version == version else 0
        start = min(start, count)
        index, sent = start, 0
        if progress is not None:
            progress(start, count)
        blocks, commit = prepared.signed(self.key, self.tid)
        budget = 2 * count + 8  # 77s that keep moving us around mean the terminal is confused
        while index < count:
            if sent >= budget:
                raise RefusedError(
                    f"terminal keeps asking for other blocks (at {index} of {count} after "
                    f"{sent} sends)",
                    code=m.ResponseCode.OUT_OF_ORDER,
                )
            stan = f"{prepared.base + index:06d}"
            rsp = yield from self.exchange_encoded(blocks[index], stan, signed=True)
            sent += 1
            code = rsp.get(39)
            if code not in (m.ResponseCode.APPROVED, m.ResponseCode.OUT_OF_ORDER):
                raise refused(f"block {index} of {count}", rsp)
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
        stan = f"{prepared.base + count:06d}"
        rsp = yield from self.exchange_encoded(commit, stan, signed=True)
        if rsp.get(39) != m.ResponseCode.APPROVED:
            raise refused(f"commit of version {version}", rsp)
        return PushResult(version, count, start, sent, already=False)
