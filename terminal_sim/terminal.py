"""The emulated POS terminal: the terminal side of the wire protocol, exactly.

:class:`Terminal` turns one request body into one response body (:meth:`Terminal.handle`);
serving it on a pty, a device or TCP is :mod:`terminal_sim.serve`'s job. Every request
that changes state runs in one SQLite transaction (:mod:`terminal_sim.state`), together
with the response it produced, so that

* killing the process at any instant never leaves a corrupt or half-activated table, and
* a request resent after a crash is answered from the stored response, never executed
  twice (a sale is never booked twice).

Checks, in order, for every request: decodable (``30``), a request MTI the catalog has
(``12``), fields 11 and 41 present (``30``), our TID (``63``); for the signed requests
(360, 361, 161, 162) the MAC under one of the keys held (``A0``, nothing changes), then the
request's own rules (``76`` older version, ``77`` out of order, ``F1`` digest/CRC/format,
``66`` tampered, ``94`` a replayed key request, ``F2`` key check). See docs/terminal.md
for the download rules and :mod:`terminal_sim.rekey` for the key change.

The terminal also emulates its hardware (:mod:`terminal_sim.wear`): sales wear its card
readers, printer and battery; sign-on and the health poll (0800/303) report them.

(Over 400 lines: one handler per catalog message, all in the one class whose
:meth:`Terminal.handle` is the terminal's I/O-free core; the pure rules live in
:mod:`protocols.feetable`, :mod:`terminal_sim.rekey` and :mod:`terminal_sim.wear`.)
"""

from __future__ import annotations

import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from protocols import messages as m
from protocols.codec import Message, Value, decode, encode
from protocols.errors import DecodeError, EncodeError, FeeError, ProtocolError
from protocols.feetable import FeeTable, compute_fee
from protocols.health import HealthInfo
from protocols.keys import KeyChange, KeyConfirm
from protocols.mac import TerminalKey, key_check_value, read_master_key
from protocols.tlv import (
    NO_PARTIAL_DOWNLOAD,
    DownloadStatus,
    PartialDownload,
    SaleRequest,
    SaleResult,
    SignOnInfo,
)
from protocols.values import Capability, check_serial, check_tid
from terminal_sim.rekey import KeySlots, decide_change, decide_confirm
from terminal_sim.state import BootInfo, SaleRecord, StateStore
from terminal_sim.wear import InitialWear, Wear, after_sale, health_info, profile_for

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
    key: bytes = field(repr=False)  # never in a repr or a log
    capabilities: Capability = DEFAULT_CAPABILITIES
    key_version: int = 1
    """The version of ``key``: that of the master key it was derived from."""

    def __post_init__(self) -> None:
        problems = []
        try:
            check_tid(self.tid)
        except ValueError as exc:
            problems.append(str(exc))
        if len(self.mid) != 15 or not self.mid.isascii() or not self.mid.isprintable():
            problems.append(f"mid {self.mid!r} must be 15 printable ASCII characters")
        try:  # the fleet's rule: the state of a fleet lives in a folder per serial
            check_serial(self.serial)
        except ValueError as exc:
            problems.append(str(exc))
        for name in ("model", "firmware"):
            value = getattr(self, name)
            if not value or len(value) > 255 or not value.isascii() or not value.isprintable():
                problems.append(f"{name} {value!r} must be 1..255 printable ASCII characters")
        if not 0 <= self.mcc <= 9999:
            problems.append(f"mcc {self.mcc} is not 0..9999")
        if len(self.key) != 16:
            problems.append("the MAC key must be 16 bytes")
        if not 1 <= self.key_version < 2**32:
            problems.append(f"key version {self.key_version} is not 1..4294967295")
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
        allow_open: bool = False,
    ) -> TerminalConfig:
        """Derive the terminal's MAC key from the fleet master key file (wire page §5); its
        version is the master key's. A file others can read is refused unless
        ``allow_open`` (:func:`protocols.mac.read_master_key`)."""
        key = read_master_key(key_file, allow_open=allow_open).terminal_key(serial)
        caps = DEFAULT_CAPABILITIES if capabilities is None else capabilities
        return cls(serial, model, firmware, tid, mid, mcc, key.key, caps, key.version)


class Terminal:
    """One emulated terminal: ``handle(request body) -> response body``.

    ``wear``: its hardware's state on first boot, or a function giving it (called only if
    the terminal boots for the first time: a fleet of 10,000 starts without computing
    them); default: fresh out of the box. A terminal whose state has wear keeps it.
    """

    def __init__(
        self,
        config: TerminalConfig,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        wear: InitialWear | Callable[[], InitialWear] | None = None,
    ) -> None:
        self.config = config
        self.store = StateStore(state_dir)
        self.clock = clock
        self.profile = profile_for(config.model)
        self.started = clock()
        self._initial = wear
        self._booted = False
        self._reply_key: bytes | None = None
        self._tables: dict[int, FeeTable] = {}
        self._encoded: tuple[Message, bytes] | None = None
        """The last response and its encoding: each response is encoded once, though it is
        both stored (:meth:`_once`) and sent."""

    def release(self) -> None:
        """Close the state file while nobody talks to the terminal (``possim fleet`` does
        when a host goes: 10,000 terminals never hold 10,000 SQLite connections). The
        terminal keeps running: the next request reopens the file, and a kill after a
        release is still a power loss, not an orderly shutdown."""
        self.store.close()

    def close(self) -> None:
        """Shut down: the next start reports an orderly restart (a kill: a power loss)."""
        if self._booted:
            try:
                with self.store.transaction() as conn:
                    self.store.shut_down(conn)
            except sqlite3.Error as exc:  # pragma: no cover - a broken store at shutdown
                log.error("%s: cannot record the shutdown: %s", self.config.serial, exc)
        self.store.close()

    # -- entry point --

    def handle(self, body: bytes) -> bytes | None:
        """Answer one request. Never raises on bad input: it answers with a response code."""
        self._reply_key = None
        self._encoded = None
        try:
            req = decode(body)
        except DecodeError as exc:
            log.warning("%s: malformed request (%s): answering 30", self.config.serial, exc)
            return encode(_format_error(body))
        if len(req.mti) != 4 or req.mti[2] not in "02468" or req.mti[3] != "0":
            log.warning("%s: %s is not a request: ignored", self.config.serial, req.mti)
            return None
        try:
            return self._encode(self._dispatch(req, body))
        except (EncodeError, DecodeError) as exc:  # e.g. an unreadable field 60/61/62
            log.warning("%s: %s: %s: answering 30", self.config.serial, req.mti, exc)
            if self._reply_key is not None:  # a signed request whose MAC we checked
                return encode(self._signed(req, RC.FORMAT_ERROR, self._address_echo(req)))
            return encode(self._respond(req, RC.FORMAT_ERROR))
        except (sqlite3.Error, OSError) as exc:  # the state store failed: nothing was changed
            log.error("%s: state store failed: %s: answering 96", self.config.serial, exc)
            if _needs_mac(req):  # signed with the key that verified it, if it got that far
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
        self._boot()
        self._activate_due()
        if req.mti == "0200":
            return self._once(req, body, self._sale)
        if code is m.NetCode.SIGN_ON:
            return self._sign_on(req)
        if code is m.NetCode.STATUS:
            return self._status(req)
        if code is m.NetCode.HEALTH:
            return self._respond(req, RC.APPROVED, {62: self.health().to_tlv()})
        assert code is not None and code in m.SIGNED_CODES
        slots = self.key_slots()
        self._reply_key = slots.current.key
        verified = slots.verifier(req, code)
        if verified is None:
            log.warning(
                "%s: %s: MAC check failed under every key held (%s): answering A0",
                self.config.serial,
                code.name,
                slots.versions,
            )
            return self._signed(req, RC.MAC_FAILED, self._address_echo(req))
        self._reply_key = verified.key
        if code is m.NetCode.BLOCK:
            return self._once(req, body, self._block)
        if code is m.NetCode.COMMIT:
            return self._once(req, body, self._commit)
        if code is m.NetCode.KEY_CHANGE:
            return self._once(req, body, lambda r, c: self._key_change(r, c, body, slots))
        return self._once(req, body, lambda r, c: self._key_confirm(r, c, body, slots, verified))

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
                response = decode(cached)
                self._encoded = (response, cached)
                return response
            response = action(req, conn)
            self.store.remember_response(conn, body, self._encode(response))
            return response

    def _encode(self, response: Message) -> bytes:
        """``encode(response)``, once per response."""
        if self._encoded is not None and self._encoded[0] is response:
            return self._encoded[1]
        data = encode(response)
        self._encoded = (response, data)
        return data

    # -- responses --

    def _respond(self, req: Message, code: RC, fields: dict[int, Value] | None = None) -> Message:
        return m.response_to(req, code, fields)

    def _signed(self, req: Message, code: RC, fields: dict[int, Value] | None = None) -> Message:
        """A response signed with the key that verified the request (else the current)."""
        key = self._reply_key or self.config.key
        signed, data = m.sign_encoded(m.response_to(req, code, fields), key)
        self._encoded = (signed, data)
        return signed

    @staticmethod
    def _address_echo(req: Message) -> dict[int, Value]:
        value = req.get(61)
        return {61: value} if isinstance(value, str) else {}

    # -- keys and hardware --

    def key_slots(self) -> KeySlots:
        """The keys held: those a key change stored, else the configured (factory) key."""
        stored = self.store.mac_keys()
        if "current" not in stored:
            return KeySlots(TerminalKey(self.config.key_version, self.config.key))
        nxt = stored.get("next")
        return KeySlots(TerminalKey(*stored["current"]), TerminalKey(*nxt) if nxt else None)

    def _boot(self) -> None:
        """On the first request that touches the state: record the boot (and the
        first-boot wear)."""
        if self._booted:
            return
        info = BootInfo(
            booted_at=datetime.fromtimestamp(int(self.started), UTC),
            model=self.config.model,
            key_version=self.config.key_version,
            key_kcv=key_check_value(self.config.key),
        )
        initial = self._initial() if callable(self._initial) else self._initial
        with self.store.transaction() as conn:
            reason = self.store.boot(conn, initial or InitialWear(Wear.fresh(self.profile)), info)
        self._booted = True
        self._initial = None  # the store has it now
        log.info("%s: booted (%s)", self.config.serial, reason.name.lower())

    def health(self) -> HealthInfo:
        """The terminal's health now (what sign-on and 0800/303 report)."""
        self._boot()
        wear = self.store.wear()
        assert wear is not None  # written by _boot
        return health_info(
            wear,
            self.profile,
            uptime=int(self.clock() - self.started),
            tampered_at=self.store.tampered_at(),
        )

    def _tampered(self, req: Message, fields: dict[int, Value]) -> Message | None:
        """A ``66`` if the tamper switch has tripped (read on every request: ``possim
        tamper`` trips it from another process)."""
        if self.store.tampered_at() is None:
            return None
        log.warning("%s: tampered: %s refused with 66", self.config.serial, m.network_code(req))
        return self._signed(req, RC.TAMPERED, fields)

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

    def _roles(self) -> tuple[int, int]:
        """The active and pending versions (0: none)."""
        roles = self.store.versions()
        return roles.get("active", (0, EPOCH))[0], roles.get("pending", (0, EPOCH))[0]

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
        tlv = info.to_tlv() + self.health().to_tlv() + self.key_slots().versions.to_tlv()
        return self._respond(req, RC.APPROVED, {42: self.config.mid, 62: tlv})

    def _status(self, req: Message) -> Message:
        active, pending, _, partial = self._versions()
        status = DownloadStatus(active, pending, partial)
        return self._respond(req, RC.APPROVED, {62: status.to_tlv()})

    def _block(self, req: Message, conn: sqlite3.Connection) -> Message:
        addr = m.block_address(req)
        if (refused := self._tampered(req, self._address_echo(req))) is not None:
            return refused
        data = req.get(62)
        if not isinstance(data, bytes) or not 0 < len(data) <= m.MAX_BLOCK:
            return self._signed(req, RC.INVALID_REQUEST, self._address_echo(req))
        if addr.count == 0 or addr.index >= addr.count:
            return self._signed(req, RC.INVALID_REQUEST, self._address_echo(req))
        active, pending = self._roles()
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
        if (refused := self._tampered(req, echo)) is not None:
            return refused
        if not isinstance(digest, bytes) or len(digest) != 32 or addr.index != addr.count:
            return self._signed(req, RC.INVALID_REQUEST, echo)
        active, pending = self._roles()
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
        if code in (RC.APPROVED, RC.NO_FEE_RULE):  # the card was read; a slip is printed
            wear = self.store.wear()
            if wear is not None:
                entry = m.EntryMode(req.text(22))
                approved = code is RC.APPROVED
                self.store.save_wear(conn, after_sale(wear, self.profile, entry, approved=approved))
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

    # -- key change (an addition to v1: docs/protocol.md, terminal_sim/rekey.py) --

    def _key_refused(self, body: bytes, slots: KeySlots) -> RC | None:
        if self.store.key_request_seen(sha256(body).digest()):
            log.warning("%s: replayed key request: 94", self.config.serial)
            return RC.DUPLICATE
        return None

    def _key_change(
        self, req: Message, conn: sqlite3.Connection, body: bytes, slots: KeySlots
    ) -> Message:
        versions: dict[int, Value] = {62: slots.versions.to_tlv()}
        if (refused := self._tampered(req, versions)) is not None:
            return refused
        if (code := self._key_refused(body, slots)) is not None:
            return self._signed(req, code, versions)
        change = KeyChange.from_tlv(req.binary(62))
        decision = decide_change(slots, change)
        now = int(self.clock())
        if decision.code is RC.APPROVED:
            if decision.changed:
                new = decision.slots.next
                assert new is not None
                current = (slots.current.version, slots.current.key)
                self.store.set_next_key(conn, current, (new.version, new.key), now)
            self.store.remember_key_request(conn, sha256(body).digest(), now)
        log.log(
            logging.INFO if decision.code is RC.APPROVED else logging.WARNING,
            "%s: key change to version %d: %s (%s)",
            self.config.serial,
            change.version,
            decision.code.value,
            decision.why,
        )
        return self._signed(req, decision.code, {62: decision.slots.versions.to_tlv()})

    def _key_confirm(
        self,
        req: Message,
        conn: sqlite3.Connection,
        body: bytes,
        slots: KeySlots,
        verified: TerminalKey,
    ) -> Message:
        if (code := self._key_refused(body, slots)) is not None:
            return self._signed(req, code, {62: slots.versions.to_tlv()})
        confirm = KeyConfirm.from_tlv(req.binary(62))
        decision = decide_confirm(slots, confirm, verified_by=verified)
        now = int(self.clock())
        if decision.code is RC.APPROVED:
            if decision.changed:
                self.store.promote_next_key(conn, now)
            self.store.remember_key_request(conn, sha256(body).digest(), now)
        log.info(
            "%s: key confirmation of version %d: %s (%s)",
            self.config.serial,
            confirm.version,
            decision.code.value,
            decision.why,
        )
        return self._signed(req, decision.code, {62: decision.slots.versions.to_tlv()})


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
        return req.mti == "0800" and m.network_code(req) in m.SIGNED_CODES
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
