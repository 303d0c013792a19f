"""The host's conversations with one terminal, sans I/O: sign-on, status, health, sale,
download, key change and rotation.

A flow is a generator that **yields request bodies and is sent the response bodies**
(``Generator[bytes, bytes, Result]``); it builds every request, signs and checks MACs,
checks that each response echoes its request's STAN, follows the terminal's answers
(resume from tag 07, field 61 after ``00``/``77``, the key versions of tag 0x20) and
returns the result. It never touches a link: :class:`protocols.session.HostSession` runs
flows over one blocking :class:`~protocols.link.Link` (:func:`run`), and
:mod:`protocols.engine` runs thousands of them at once from one selector loop. The rules
are written once, here.

**Keys.** A :class:`Conversation` signs with one key, or picks among a terminal's keys of
several versions (a :class:`~protocols.keys.TerminalKeyRing`, or a per-version lookup) the
one of the version the terminal reports at sign-on: its current key, else its next one
(docs/protocol.md, "Key versions"). Without a key of the terminal's versions a signed
request raises :class:`~protocols.errors.KeyVersionError` before anything is sent.

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

(Over 400 lines: one class holds every conversation a host has with a terminal, v1's and
the additions, as :class:`~protocols.session.HostSession` did before it ran them.)
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeVar

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import DecodeError, KeyVersionError, RefusedError, refused_error
from protocols.feetable import FeeTable
from protocols.health import HealthInfo
from protocols.keys import KeyChange, KeyConfirm, KeySource, KeyVersions, TerminalKeyRing
from protocols.mac import TerminalKey
from protocols.tlv import DownloadStatus, SaleRequest, SaleResult, SignOnInfo
from protocols.values import CardType

__all__ = [
    "V1_KEYS",
    "Conversation",
    "Flow",
    "KeyRotation",
    "PreparedTable",
    "PushResult",
    "RotationStep",
    "SaleOutcome",
    "SignOn",
    "refused",
    "run",
]

T = TypeVar("T")
Flow = Generator[bytes, bytes, T]
"""Yields request bodies, is sent response bodies, returns the result."""

_MAX_STAN: Final = 999_999

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


class RotationStep(StrEnum):
    """Progress of :meth:`Conversation.rotate_key`, reported after each step."""

    SIGNED_ON = "signed on"
    CHANGED = "changed"
    """The terminal holds the new key as its next key (0800/161 answered 00)."""
    CONFIRMED = "confirmed"
    """The terminal uses the new key and has dropped the old one (0800/162 answered 00)."""


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """The outcome of :meth:`Conversation.rotate_key`."""

    version: int
    """The key version the terminal holds now."""
    previous: int
    """The key version the terminal held when the call signed on."""
    changed: bool
    """A key change (0800/161) was sent and accepted in this call (False when the
    terminal already held the new key as its next one: only the confirmation was sent)."""
    already: bool
    """The terminal already used the new key: nothing was sent."""
    keys: KeyVersions | None = field(default=None, compare=False)
    """The key versions the terminal holds afterwards, as it reported them (tag 0x20 of the
    confirmation; of the sign-on when ``already``). Not compared: a report, not the
    outcome."""


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


def refused(what: str, response: Message, *, addition: bool = False) -> RefusedError:
    """``what`` was answered with a code other than ``00``, as a typed error
    (:func:`~protocols.errors.refused_error`: ``66``, ``94`` and ``F2`` have classes of
    their own). ``addition``: the request is an addition to v1, which a v1 terminal
    answers ``30``."""
    code = str(response.get(39, "??"))
    try:
        meaning = m.ResponseCode(code).meaning
    except ValueError:
        meaning = "unknown response code"
    if addition and code == m.ResponseCode.FORMAT_ERROR:
        meaning += ": the terminal does not support it (a v1 terminal)"
    return refused_error(f"{what} refused: {code} ({meaning})", code=code)


class PreparedTable:
    """A fee table's blocks and digest, computed once; its signed requests, once per key.

    ``base`` is the STAN of block 0 (random by default); the signed requests of the last
    ``keep`` (terminal key, TID) pairs are kept (a fleet pushes one table to many
    terminals, each with its own key: the cache serves resends and retries, not other
    terminals). The key is the one the conversation picked for the version the terminal
    reported, so a terminal in the middle of a key rotation gets blocks under its own key.

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

    def signed(self, key: bytes | TerminalKey, tid: str) -> tuple[list[bytes], bytes]:
        """The encoded, MAC'd block requests and commit request for one terminal."""
        mac_key = key.key if isinstance(key, TerminalKey) else key
        cache_key = (mac_key, tid)
        hit = self._signed.get(cache_key)
        if hit is not None:
            self._signed.move_to_end(cache_key)
            return hit
        version, count, base = self.version, self.count, self.base
        blocks = [
            m.sign_encoded(m.block(base + i, tid, version, i, count, data), mac_key)[1]
            for i, data in enumerate(self.blocks)
        ]
        commit = m.sign_encoded(m.commit(base + count, tid, version, count, self.digest), mac_key)[
            1
        ]
        self._signed[cache_key] = hit = (blocks, commit)
        if len(self._signed) > self._keep:
            self._signed.popitem(last=False)
        return hit


class Conversation:
    """The host's side of a conversation with one terminal (TID).

    ``key``: the terminal's key (bytes, or a :class:`~protocols.mac.TerminalKey`).
    ``keys``: its keys of several versions instead (or as well): a
    :class:`~protocols.keys.TerminalKeyRing`, terminal keys, or a lookup
    ``version -> TerminalKey | None``; then every sign-on picks the key of the version the
    terminal reports (:meth:`use_key`), and :attr:`key` is None while the conversation has
    no key of the terminal's versions or has not signed on yet. Neither: unsigned requests
    only (sign-on, echo, status, health, sales).

    STANs start at a random value so that a restarted host never repeats the last STAN a
    terminal saw (which it would take for a resend).
    """

    def __init__(
        self,
        tid: str,
        key: bytes | TerminalKey | None = None,
        stan: m.StanCounter | None = None,
        *,
        keys: KeySource = (),
    ) -> None:
        self.tid = tid
        self.ring = TerminalKeyRing.of(keys)
        """The terminal's keys by version (empty when one bare key was given)."""
        self.key: bytes | None
        self.key_version: int | None
        if isinstance(key, TerminalKey):
            if self.ring.get(key.version) is None:
                self.ring.add(key)
            self.key, self.key_version = key.key, key.version
        else:
            self.key, self.key_version = key, None
        self.terminal_keys: KeyVersions | None = None
        """The key versions the terminal reported last (sign-on, key change or
        confirmation)."""
        self.stan = stan or m.StanCounter(secrets.randbelow(_MAX_STAN) + 1)
        self._avoid: range = range(0)

    def next_stan(self) -> int:
        """The next STAN of the counter, skipping those of a prepared table being pushed."""
        stan = self.stan.next()
        while stan in self._avoid:
            stan = self.stan.next()
        return stan

    # -- keys ---------------------------------------------------------------------------------

    def use_key(self, versions: KeyVersions) -> bytes | None:
        """Pick, in :attr:`ring`, the key for a terminal holding ``versions``: its current
        key, else its next one (a terminal accepts both until it confirms). With one bare
        key and no ring nothing changes. Returns the key chosen."""
        self.terminal_keys = versions
        if not self.ring:
            return self.key
        chosen = self.ring.pick(versions)
        if chosen is None:
            self.key = self.key_version = None
            return None
        self.key, self.key_version = chosen.key, chosen.version
        return self.key

    def signing_key(self, key: bytes | None = None) -> bytes:
        """``key``, else the conversation's; :class:`KeyVersionError` when there is none."""
        if key is not None:
            return key
        if self.key is None:
            held = self.terminal_keys
            if held is None:
                where = "sign on first" if self.ring else "no key was given"
            else:
                where = f"the terminal holds {held.current}" + (
                    f" and next {held.next}" if held.pending else ""
                )
            raise KeyVersionError(
                f"{self.tid}: no key to sign with: the host has {self.ring.described()}; {where}",
                held=None if held is None else (held.current, held.next),
            )
        return self.key

    # -- single exchanges ----------------------------------------------------------------

    def exchange(
        self, request: Message, *, signed: bool = False, key: bytes | None = None
    ) -> Flow[Message]:
        """One request → the decoded response (any response code).

        With ``signed`` the request is MACed (with ``key``, by default the conversation's:
        :class:`KeyVersionError` before anything is sent when there is none) and a
        response other than ``A0`` must carry a valid MAC under the same key
        (:class:`~protocols.errors.MacError` otherwise).
        """
        mac_key = self.signing_key(key) if signed else None
        body = m.sign_encoded(request, mac_key)[1] if mac_key is not None else encode(request)
        return self.exchange_encoded(body, str(request.get(11)), verify_with=mac_key)

    def exchange_encoded(
        self, body: bytes, stan: str, *, verify_with: bytes | None = None
    ) -> Flow[Message]:
        """:meth:`exchange` for a request already encoded (and signed) with STAN ``stan``;
        ``verify_with``: the key the response's MAC must verify under (signed requests)."""
        response = decode((yield body))
        if response.get(11) != stan:
            raise RefusedError(
                f"response STAN {response.get(11)!r} does not echo {stan!r}",
                code=str(response.get(39, "")),
                field=11,
            )
        if verify_with is not None and response.get(39) != m.ResponseCode.MAC_FAILED:
            m.verify(response, verify_with)
        return response

    def ok(
        self,
        request: Message,
        *,
        signed: bool = False,
        key: bytes | None = None,
        what: str,
        addition: bool = False,
    ) -> Flow[Message]:
        """:meth:`exchange`, refusing any response code but ``00`` (:func:`refused`)."""
        response = yield from self.exchange(request, signed=signed, key=key)
        if response.get(39) != m.ResponseCode.APPROVED:
            raise refused(what, response, addition=addition)
        return response

    def sign_on(self) -> Flow[SignOn]:
        """0800/001: model, serial, firmware, versions, partial download, capabilities;
        health and key versions when the terminal reports them. Picks the key of the
        reported version (:meth:`use_key`)."""
        rsp = yield from self.ok(m.sign_on(self.next_stan(), self.tid), what="sign-on")
        mid, tlv = _text(rsp, 42), _binary(rsp, 62)
        signed_on = SignOn(
            mid=mid,
            info=SignOnInfo.from_tlv(tlv),
            health=HealthInfo.from_tlv_optional(tlv),
            keys=KeyVersions.from_tlv_optional(tlv),
        )
        self.use_key(signed_on.key_versions)
        return signed_on

    def echo(self) -> Flow[None]:
        """0800/301: line test."""
        yield from self.ok(m.echo(self.next_stan(), self.tid), what="echo")

    def status(self) -> Flow[DownloadStatus]:
        """0800/362: active and pending versions and where a download would resume."""
        request = m.download_status(self.next_stan(), self.tid)
        rsp = yield from self.ok(request, what="download status")
        return DownloadStatus.from_tlv(_binary(rsp, 62))

    def health(self) -> Flow[HealthInfo]:
        """0800/303: the terminal's health (battery, printer, card reads, tamper, uptime,
        last reboot, free storage). Unsigned, like sign-on."""
        request = m.health(self.next_stan(), self.tid)
        rsp = yield from self.ok(request, what="health poll", addition=True)
        return HealthInfo.from_tlv(_binary(rsp, 62))

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
        table, ``A0`` wrong key, ``F1`` checks failed, ``66`` tampered:
        :class:`~protocols.errors.TamperedError`), :class:`KeyVersionError` (no key of the
        terminal's versions: nothing signed was sent) and, from the driver,
        :class:`~protocols.errors.LinkError`; after a LinkError, run it again on a new
        link: the terminal keeps the blocks it stored.

        ``signed_on``: a sign-on the caller has just made on this link, used instead of a
        new one (it must be fresh: the download resumes from the block it reports).
        """
        prepared = table if isinstance(table, PreparedTable) else PreparedTable(table)
        self._avoid = prepared.stans
        if signed_on is None:
            signed_on = yield from self.sign_on()
        else:
            self.use_key(signed_on.key_versions)
        info = signed_on.info
        version, count = prepared.version, prepared.count
        if version in (info.active_version, info.pending_version):
            return PushResult(version, count, count, 0, already=True)
        partial = info.partial
        start = partial.next_block if partial.version == version else 0
        start = min(start, count)
        index, sent = start, 0
        key = self.signing_key()
        if progress is not None:
            progress(start, count)
        blocks, commit = prepared.signed(key, self.tid)
        budget = 2 * count + 8  # 77s that keep moving us around mean the terminal is confused
        while index < count:
            if sent >= budget:
                raise RefusedError(
                    f"terminal keeps asking for other blocks (at {index} of {count} after "
                    f"{sent} sends)",
                    code=m.ResponseCode.OUT_OF_ORDER,
                )
            stan = f"{prepared.base + index:06d}"
            rsp = yield from self.exchange_encoded(blocks[index], stan, verify_with=key)
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
        rsp = yield from self.exchange_encoded(commit, stan, verify_with=key)
        if rsp.get(39) != m.ResponseCode.APPROVED:
            raise refused(f"commit of version {version}", rsp)
        return PushResult(version, count, start, sent, already=False)

    # -- key rotation (an addition to v1) ---------------------------------------------------

    def change_key(self, new: TerminalKey) -> Flow[KeyVersions]:
        """0800/161: give the terminal ``new`` as its next key, wrapped under and signed
        with the conversation's key (the terminal's current one). Returns the terminal's
        key versions (current unchanged, next = ``new.version``)."""
        current = self.signing_key()
        change = KeyChange.build(current, new)
        req = m.key_change(self.next_stan(), self.tid, change.to_tlv())
        what = f"key change to version {new.version}"
        rsp = yield from self.ok(req, signed=True, key=current, what=what, addition=True)
        self.terminal_keys = KeyVersions.from_tlv(_binary(rsp, 62))
        return self.terminal_keys

    def confirm_key(self, new: TerminalKey) -> Flow[KeyVersions]:
        """0800/162, signed with ``new``: the terminal switches to it and drops the old
        key. The conversation uses ``new`` from then on."""
        req = m.key_confirm(self.next_stan(), self.tid, KeyConfirm(new.version).to_tlv())
        what = f"key confirmation of {new.version}"
        rsp = yield from self.ok(req, signed=True, key=new.key, what=what, addition=True)
        self.terminal_keys = KeyVersions.from_tlv(_binary(rsp, 62))
        self._now_using(new)
        return self.terminal_keys

    def _now_using(self, new: TerminalKey) -> None:
        self.ring.add(new)
        self.key, self.key_version = new.key, new.version

    def rotate_key(
        self,
        new: TerminalKey,
        progress: Callable[[RotationStep], None] | None = None,
        *,
        signed_on: SignOn | None = None,
    ) -> Flow[KeyRotation]:
        """Move the terminal to key ``new``: change, then confirm; resumable.

        Signs on first (or uses ``signed_on``, which must be fresh) and goes on from what
        the terminal reports (docs/protocol.md, "Recovery"): already on ``new`` → nothing
        to send; ``new`` is its next key → confirm only; otherwise change (signed with its
        current key, which the conversation must have: :class:`KeyVersionError` if not,
        before anything is sent) and confirm. After a
        :class:`~protocols.errors.LinkError`, run it again on a new link.
        ``progress(step)`` is called after each step.
        """
        if signed_on is None:
            signed_on = yield from self.sign_on()
        else:
            self.use_key(signed_on.key_versions)
        if progress is not None:
            progress(RotationStep.SIGNED_ON)
        held = signed_on.keys
        if held is None:
            raise KeyVersionError(
                f"{self.tid}: the terminal reports no key versions (a v1 terminal cannot "
                "change keys)"
            )
        if held.current == new.version:
            self._now_using(new)
            return KeyRotation(new.version, held.current, changed=False, already=True, keys=held)
        if held.current > new.version:
            raise KeyVersionError(
                f"{self.tid}: the terminal holds key version {held.current}, newer than "
                f"{new.version}",
                held=(held.current, held.next),
            )
        changed = held.next != new.version
        if changed:
            if self.ring:  # (a conversation given one bare key takes it for the current one)
                current = self.ring.get(held.current)
                if current is None:
                    raise KeyVersionError(
                        f"{self.tid}: the terminal holds key version {held.current}; the "
                        f"host has {self.ring.described()}",
                        held=(held.current, held.next),
                    )
                self.key, self.key_version = current.key, current.version
            yield from self.change_key(new)
            if progress is not None:
                progress(RotationStep.CHANGED)
        after = yield from self.confirm_key(new)
        if progress is not None:
            progress(RotationStep.CONFIRMED)
        return KeyRotation(new.version, held.current, changed=changed, already=False, keys=after)
