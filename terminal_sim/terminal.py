"""The emulated POS terminal: the terminal side of the wire protocol, exactly.

:class:`Terminal` turns one request body into one response body (:meth:`Terminal.handle`);
serving it on a pty, a device or TCP is :mod:`terminal_sim.serve`'s job. Every request
that changes state runs in one SQLite transaction (:mod:`terminal_sim.state`), together
with the response it produced, so that

* killing the process at any instant never leaves a corrupt or half-activated table, and
* a request resent after a crash is answered from the stored response, never executed
  twice (a sale is never booked twice).

Checks, in order, for every request: decodable (``30``), a request MTI the catalog has
(``12``), fields 11 and 41 present (``30``), our TID (``63``); for 360/361 the MAC (``A0``,
nothing changes), then the request's own rules (``76`` older version, ``77`` out of order,
``F1`` digest/CRC/format). See docs/terminal.md for the download rules.
"""

from __future__ import annotations

import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from protocols import messages as m
from protocols.codec import Message, Value, decode, encode
from protocols.errors import DecodeError, EncodeError, FeeError, MacError, ProtocolError
from protocols.feetable import FeeTable, compute_fee
from protocols.mac import derive_terminal_key, load_master_key
from protocols.tlv import (
    NO_PARTIAL_DOWNLOAD,
    DownloadStatus,
    PartialDownload,
    SaleRequest,
    SaleResult,
    SignOnInfo,
)
from protocols.values import Capability
from terminal_sim.state import SaleRecord, StateStore

__all__ = ["Terminal", "TerminalConfig"]

log = logging.getLogger("possim.terminal")

RC = m.ResponseCode
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_CAPABILITIES = Capability.CHIP | Capability.CONTACTLESS | Capability.MAGSTRIPE


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """Identity and configuration of one terminal."""

    serial: str
    model: str
    firmware: str
    tid: str
    mid: str
    mcc: int
    key: bytes
    capabilities: Capability = DEFAULT_CAPABILITIES

    def __post_init__(self) -> None:
        problems = []
        for name, value, size in (("tid", self.tid, 8), ("mid", self.mid, 15)):
            if len(value) != size or not value.isascii() or not value.isprintable():
                problems.append(f"{name} {value!r} must be {size} printable ASCII characters")
        for name in ("serial", "model", "firmware"):
            value = getattr(self, name)
            if not value or len(value) > 255 or not value.isascii() or not value.isprintable():
                problems.append(f"{name} {value!r} must be 1..255 printable ASCII characters")
        if not 0 <= self.mcc <= 9999:
            problems.append(f"mcc {self.mcc} is not 0..9999")
        if len(self.key) != 16:
            problems.append("the MAC key must be 16 bytes")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_master_key_file(
        cls,
        key_file: Path,
        *,
        serial: str,
        model: str,
        firmware: str,
        tid: str,
        mid: str,
        mcc: int,
        capabilities: Capability | None = None,
    ) -> TerminalConfig:
        """Derive the terminal's MAC key from the fleet master key file (wire page §5)."""
        key = derive_terminal_key(load_master_key(key_file), serial)
        caps = DEFAULT_CAPABILITIES if capabilities is None else capabilities
        return cls(serial, model, firmware, tid, mid, mcc, key, caps)


class Terminal:
    """One emulated terminal: ``handle(request body) -> response body``."""

    def __init__(
        self,
        config: TerminalConfig,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = StateStore(state_dir)
        self.clock = clock
        self._tables: dict[int, FeeTable] = {}

    def close(self) -> None:
        self.store.close()

    # -- entry point --

    def handle(self, body: bytes) -> bytes | None:
        """Answer one request. Never raises on bad input: it answers with a response code."""
        try:
            req = decode(body)
        except DecodeError as exc:
            log.warning("%s: malformed request (%s): answering 30", self.config.serial, exc)
            return encode(_format_error(body))
        if len(req.mti) != 4 or req.mti[2] not in "02468" or req.mti[3] != "0":
            log.warning("%s: %s is not a request: ignored", self.config.serial, req.mti)
            return None
        try:
            return encode(self._dispatch(req, body))
        except (EncodeError, DecodeError) as exc:  # e.g. an unreadable field 60/61/62
            log.warning("%s: %s: %s: answering 30", self.config.serial, req.mti, exc)
            return encode(self._respond(req, RC.FORMAT_ERROR))
        except (sqlite3.Error, OSError) as exc:  # the state store failed: nothing was changed
            log.error("%s: state store failed: %s: answering 96", self.config.serial, exc)
            if _needs_mac(req):
                return encode(self._signed(req, RC.TERMINAL_ERROR, self._address_echo(req)))
            return encode(self._respond(req, RC.TERMINAL_ERROR))

    # -- dispatch --

    def _dispatch(self, req: Message, body: bytes) -> Message:
        if req.mti not in ("0800", "0200"):
            return self._respond(req, RC.INVALID_REQUEST)
        if 11 not in req or 41 not in req:
            return self._respond(req, RC.FORMAT_ERROR)
        if req.get(41) != self.config.tid:
            log.warning("%s: unknown TID %r: answering 63", self.config.serial, req.get(41))
            return self._respond(req, RC.NOT_ACCEPTED)
        code = m.network_code(req) if req.mti == "0800" else None
        if code is m.NetCode.ECHO:  # a line test: answered without touching the state
            return self._respond(req, RC.APPROVED)
        self._activate_due()
        if req.mti == "0200":
            return self._once(req, body, self._sale)
        if code is m.NetCode.SIGN_ON:
            return self._sign_on(req)
        if code is m.NetCode.STATUS:
            return self._status(req)
        try:
            m.verify(req, self.config.key)
        except MacError as exc:
            log.warning("%s: %s: answering A0", self.config.serial, exc)
            return self._signed(req, RC.MAC_FAILED, self._address_echo(req))
        if code is m.NetCode.BLOCK:
            return self._once(req, body, self._block)
        return self._once(req, body, self._commit)

    def _once(
        self,
        req: Message,
        body: bytes,
        action: Callable[[Message, sqlite3.Connection], Message],
    ) -> Message:
        """Run a state-changing request in one transaction with its stored response."""
        with self.store.transaction() as conn:
            cached = self.store.last_response(body)
            if cached is not None:
                log.info(
                    "%s: repeat of STAN %s: resending the stored response",
                    self.config.serial,
                    req.get(11),
                )
                return decode(cached)
            response = action(req, conn)
            self.store.remember_response(conn, body, encode(response))
            return response

    # -- responses --

    def _respond(self, req: Message, code: RC, fields: dict[int, Value] | None = None) -> Message:
        return m.response_to(req, code, fields)

    def _signed(self, req: Message, code: RC, fields: dict[int, Value] | None = None) -> Message:
        return m.sign(m.response_to(req, code, fields), self.config.key)

    @staticmethod
    def _address_echo(req: Message) -> dict[int, Value]:
        value = req.get(61)
        return {61: value} if isinstance(value, str) else {}

    # -- tables --

    def _activate_due(self) -> None:
        pending = self.store.versions().get("pending")
        if pending is not None and pending[1].timestamp() <= self.clock():
            with self.store.transaction() as conn:
                if self.store.activate_pending(conn, int(self.clock())):
                    log.info("%s: fee table %d is now active", self.config.serial, pending[0])

    def active_table(self) -> FeeTable | None:
        """The active table, parsed once per version."""
        active = self.store.versions().get("active")
        if active is None:
            return None
        version = active[0]
        table = self._tables.get(version)
        if table is None:
            data = self.store.table_data(version)
            if data is None:  # pragma: no cover - activated between the two reads
                return None
            table = _parse_table(data)
            self._tables = {version: table}
        return table

    def _versions(self) -> tuple[int, int, datetime, PartialDownload]:
        roles = self.store.versions()
        active, _ = roles.get("active", (0, EPOCH))
        pending, effective = roles.get("pending", (0, EPOCH))
        partial = self.store.partial()
        return (
            active,
            pending,
            effective,
            PartialDownload(partial.version, partial.next_block)
            if partial
            else NO_PARTIAL_DOWNLOAD,
        )

    # -- the catalog --

    def _sign_on(self, req: Message) -> Message:
        active, pending, effective, partial = self._versions()
        info = SignOnInfo(
            model=self.config.model,
            serial=self.config.serial,
            firmware=self.config.firmware,
            active_version=active,
            pending_version=pending,
            capabilities=self.config.capabilities,
            pending_effective=effective,
            mcc=self.config.mcc,
            partial=partial,
        )
        return self._respond(req, RC.APPROVED, {42: self.config.mid, 62: info.to_tlv()})

    def _status(self, req: Message) -> Message:
        active, pending, _, partial = self._versions()
        status = DownloadStatus(active, pending, partial)
        return self._respond(req, RC.APPROVED, {62: status.to_tlv()})

    def _block(self, req: Message, conn: sqlite3.Connection) -> Message:
        addr = m.block_address(req)
        data = req.get(62)
        if not isinstance(data, bytes) or not 0 < len(data) <= m.MAX_BLOCK:
            return self._signed(req, RC.INVALID_REQUEST, self._address_echo(req))
        if addr.count == 0 or addr.index >= addr.count:
            return self._signed(req, RC.INVALID_REQUEST, self._address_echo(req))
        active, pending, _, _ = self._versions()
        if addr.version <= active or addr.version < pending:
            log.warning(
                "%s: version %d refused (active %d, pending %d): 76",
                self.config.serial,
                addr.version,
                active,
                pending,
            )
            return self._signed(req, RC.VERSION_REFUSED, self._address_echo(req))
        if addr.version == pending:  # already complete and committed: nothing more needed
            nxt = m.BlockAddress(addr.version, addr.count, addr.count).encode()
            return self._signed(req, RC.APPROVED, {61: nxt})
        partial = self.store.partial()
        now = int(self.clock())
        if partial is None or (partial.version, partial.count) != (addr.version, addr.count):
            if addr.index != 0:  # a new download starts at block 0
                nxt = m.BlockAddress(addr.version, 0, addr.count).encode()
                return self._signed(req, RC.OUT_OF_ORDER, {61: nxt})
            self.store.start_download(conn, addr.version, addr.count, now)
            stored = 0
        else:
            stored = partial.next_block
        if addr.index < stored:
            code = RC.APPROVED  # a repeat of a stored block
        elif addr.index > stored:
            code = RC.OUT_OF_ORDER
        else:
            self.store.add_block(conn, addr.index, data)
            stored += 1
            code = RC.APPROVED
        nxt = m.BlockAddress(addr.version, stored, addr.count).encode()
        return self._signed(req, code, {61: nxt})

    def _commit(self, req: Message, conn: sqlite3.Connection) -> Message:
        addr = m.block_address(req)
        digest = req.get(62)
        echo = self._address_echo(req)
        if not isinstance(digest, bytes) or len(digest) != 32 or addr.index != addr.count:
            return self._signed(req, RC.INVALID_REQUEST, echo)
        active, pending, _, _ = self._versions()
        if addr.version == pending:
            stored = self.store.table("pending")
            ok = stored is not None and stored.sha256 == digest
            return self._signed(req, RC.APPROVED if ok else RC.TABLE_CHECK_FAILED, echo)
        if addr.version <= active or addr.version < pending:
            return self._signed(req, RC.VERSION_REFUSED, echo)
        partial = self.store.partial()
        if partial is None or (partial.version, partial.count) != (addr.version, addr.count):
            nxt = m.BlockAddress(addr.version, 0, addr.count).encode()
            return self._signed(req, RC.OUT_OF_ORDER, {61: nxt})
        if partial.next_block != partial.count:
            nxt = m.BlockAddress(addr.version, partial.next_block, addr.count).encode()
            return self._signed(req, RC.OUT_OF_ORDER, {61: nxt})
        data = self.store.blocks_data()
        problem = None
        if sha256(data).digest() != digest:
            problem = "SHA-256 of the blocks differs from the commit's digest"
        else:
            try:
                table = _parse_table(data)
            except ProtocolError as exc:
                problem = str(exc)
            else:
                if table.version != addr.version:
                    problem = f"the file says version {table.version}, field 61 {addr.version}"
        if problem is not None:
            log.warning(
                "%s: commit of version %d failed its checks: %s: F1",
                self.config.serial,
                addr.version,
                problem,
            )
            self.store.clear_download(conn)
            return self._signed(req, RC.TABLE_CHECK_FAILED, echo)
        now = int(self.clock())
        effective = int(table.effective.timestamp())
        self.store.store_pending(conn, table.version, effective, data, digest, now)
        self.store.clear_download(conn)
        if effective <= now:
            self.store.activate_pending(conn, now)
        log.info(
            "%s: fee table %d committed (effective %s)",
            self.config.serial,
            table.version,
            table.effective.isoformat(),
        )
        return self._signed(req, RC.APPROVED, echo)

    def _sale(self, req: Message, conn: sqlite3.Connection) -> Message:
        stan = req.text(11)
        amount = m.parse_amount(req) if 4 in req else -1
        echo: dict[int, Value] = {n: req.fields[n] for n in (4, 49) if n in req}
        card = 0
        code: RC
        fee = net = None
        approval = None
        table = self.active_table()
        try:
            if req.get(3) != "000000" or amount < 0 or 49 not in req or 62 not in req:
                raise _AnswerError(RC.INVALID_REQUEST if amount >= 0 else RC.FORMAT_ERROR)
            if req.get(22) not in {e.value for e in m.EntryMode}:
                raise _AnswerError(RC.INVALID_REQUEST)
            card = SaleRequest.from_tlv(req.binary(62)).card_type
            if table is None:
                raise _AnswerError(RC.NO_FEE_RULE)
            if int(req.text(49)) != table.currency:
                raise _AnswerError(RC.INVALID_REQUEST)
            fee = compute_fee(table, amount, card, self.config.mcc)
        except _AnswerError as answer:
            code = answer.code
        except FeeError:
            code = RC.NO_FEE_RULE
        except ProtocolError:
            code = RC.FORMAT_ERROR
        else:
            code = RC.APPROVED
            net = amount - fee
            approval = secrets.token_hex(3).upper()
        fields = dict(echo)
        if code is RC.APPROVED:
            assert table is not None and fee is not None and net is not None
            fields.update(
                {
                    28: m.fee_field(fee),
                    38: approval or "",
                    62: SaleResult(table.version, net).to_tlv(),
                }
            )
        self.store.record_sale(
            conn,
            SaleRecord(
                at=datetime.fromtimestamp(int(self.clock()), UTC),
                stan=stan,
                amount=max(amount, 0),
                card_type=int(card),
                code=code.value,
                fee=fee if code is RC.APPROVED else None,
                net=net,
                approval=approval,
                table_version=table.version if table else None,
            ),
        )
        return self._respond(req, code, fields)


@functools.lru_cache(maxsize=8)
def _parse_table(data: bytes) -> FeeTable:
    """A fee-table file parsed and checked, shared by every terminal of the process: a
    fleet of 10,000 terminals parses a table once, not twice per terminal (commit and
    first sale: 5 ms each for an 8 KiB table), and holds it once in memory."""
    return FeeTable.from_bytes(data)


class _AnswerError(Exception):
    def __init__(self, code: RC) -> None:
        self.code = code


def _needs_mac(req: Message) -> bool:
    try:
        return req.mti == "0800" and m.network_code(req) in (m.NetCode.BLOCK, m.NetCode.COMMIT)
    except DecodeError:
        return False


def _format_error(body: bytes) -> Message:
    """A ``30`` for a request that does not decode: echo what can be read of it."""
    mti = body[:4].decode("ascii", "replace")
    try:
        rmti = m.response_mti(mti)
    except EncodeError:
        rmti = "0810"
    return Message(rmti, {39: RC.FORMAT_ERROR.value})
