"""The message catalog: builders and readers, MAC at message level, and the whole protocol
layer end to end (a fee table pushed block by block over a real pty pair, then a sale)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import DecodeError, EncodeError, MacError, ProtocolError
from protocols.feetable import FeeRule, FeeTable, compute_fee
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.pty import PtyPair
from protocols.tlv import SaleRequest, SaleResult
from protocols.values import CardType
from tests.protocols.catalog import CATALOG, DIGEST, KEY, TID


def test_builders_match_the_catalog() -> None:
    assert m.sign_on(1, TID) == CATALOG["0800/001 sign-on"]
    assert m.echo(2, TID) == CATALOG["0800/301 echo"]
    assert m.download_status(5, TID) == CATALOG["0800/362 status"]
    sale = m.sale(6, TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv())
    assert sale == CATALOG["0200 sale"]
    blk = m.block(3, TID, version=9, index=3, count=4, data=CATALOG["0800/360 block"][62])
    assert {n: v for n, v in CATALOG["0800/360 block"].fields.items() if n != 64} == blk.fields
    com = m.commit(4, TID, version=9, count=4, digest=DIGEST)
    assert {n: v for n, v in CATALOG["0800/361 commit"].fields.items() if n != 64} == com.fields


def test_builders_of_the_additions_match_the_catalog() -> None:
    assert m.health(9, TID) == CATALOG["0800/303 health"]
    change = m.key_change(10, TID, CATALOG["0800/161 key change"][62])
    assert {n: v for n, v in CATALOG["0800/161 key change"].fields.items() if n != 64} == (
        change.fields
    )
    confirm = m.key_confirm(11, TID, CATALOG["0800/162 key confirmation"][62])
    assert {n: v for n, v in CATALOG["0800/162 key confirmation"].fields.items() if n != 64} == (
        confirm.fields
    )
    assert m.network_code(change) is m.NetCode.KEY_CHANGE
    assert m.network_code(confirm) is m.NetCode.KEY_CONFIRM
    assert m.network_code(m.health(1, TID)) is m.NetCode.HEALTH


def test_signed_codes_and_new_response_codes() -> None:
    assert {"360", "361", "161", "162"} == m.SIGNED_CODES
    v1 = {"00", "12", "30", "57", "63", "76", "77", "A0", "F1", "96"}
    added = {c.value for c in m.ResponseCode} - v1
    assert added == {"66", "94", "F2"}  # none of them changes a v1 meaning
    for code in m.ResponseCode:
        assert code.meaning


def test_readers() -> None:
    assert m.network_code(CATALOG["0800/360 block"]) is m.NetCode.BLOCK
    assert m.block_address(CATALOG["0810/360 block"]) == m.BlockAddress(9, 4, 4)
    assert m.parse_fee(CATALOG["0210 sale"]) == 60
    assert m.parse_amount(CATALOG["0210 sale"]) == 10_000


@pytest.mark.parametrize(
    ("msg", "reader", "field"),
    [
        (Message("0800", {11: "000001"}), m.network_code, 60),
        (Message("0800", {60: "00000000999"}), m.network_code, 60),
        (Message("0800", {60: "0000000001"}), m.network_code, 60),
        (Message("0800", {61: "00000001000100"}), m.block_address, 61),
        (Message("0210", {28: "C00000001"}), m.parse_fee, 28),
        (Message("0210", {28: b"x"}), m.parse_fee, 28),
    ],
)
def test_readers_raise_typed_errors(msg: Message, reader: object, field: int) -> None:
    with pytest.raises(DecodeError) as info:
        reader(msg)  # type: ignore[operator]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: m.block(1, TID, 1, 0, 1, b""), 62),
        (lambda: m.block(1, TID, 1, 0, 1, bytes(901)), 62),
        (lambda: m.block(1, TID, 1, 2, 2, b"x"), 61),
        (lambda: m.block(1, TID, 10**8, 0, 1, b"x"), 61),
        (lambda: m.commit(1, TID, 1, 1, b"short"), 62),
        (lambda: m.sign_on(10**6, TID), 11),
        (lambda: m.sale(1, TID, -1, b""), 4),
        (lambda: m.sale(1, TID, True, b""), 4),  # type: ignore[arg-type]
        (lambda: m.fee_field(10**8), 28),
        (lambda: m.response_mti("0810"), "MTI"),
    ],
)
def test_builders_refuse_bad_values(build: object, field: object) -> None:
    with pytest.raises(EncodeError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field


def test_response_to_echoes_stan_and_tid() -> None:
    rsp = m.response_to(CATALOG["0200 sale"], m.ResponseCode.NO_FEE_RULE)
    assert rsp == CATALOG["0210 no rule"].__class__("0210", {11: "000006", 39: "57", 41: TID})
    assert m.ResponseCode("A0").meaning == "MAC check failed"
    with pytest.raises(ValueError):
        m.ResponseCode("99")


def test_stan_counter_wraps_and_is_thread_safe() -> None:
    counter = m.StanCounter(999_990)
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(1000):
            value = counter.next()
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(set(seen)) == 4000
    assert min(seen) == 1 and max(seen) == 999_999


# --- MAC at message level -------------------------------------------------------------------


def _reference_mac(key: bytes, msg: Message) -> bytes:
    """§5 written out: CMAC over the encoded message up to field 64, bit 64 set."""
    data = encode(Message(msg.mti, {**msg.fields, 64: bytes(8)}))[:-8]
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()[:8]


def test_sign_matches_the_wire_page_formula() -> None:
    req = m.block(3, TID, 9, 0, 1, b"FEE1 block")
    signed = m.sign(req, KEY)
    assert signed[64] == _reference_mac(KEY, req)
    m.verify(signed, KEY)
    m.verify(decode(encode(signed)), KEY)  # survives the wire


@pytest.mark.parametrize(
    "tamper",
    [
        lambda msg: Message(msg.mti, {**msg.fields, 61: "0000000900000002"}),
        lambda msg: Message(msg.mti, {**msg.fields, 62: b"FEE2 block"}),
        lambda msg: Message("0820", msg.fields),
        lambda msg: Message(msg.mti, {**msg.fields, 64: bytes(8)}),
        lambda msg: Message(msg.mti, {n: v for n, v in msg.fields.items() if n != 64}),
    ],
)
def test_verify_refuses_tampered_or_missing_macs(tamper: object) -> None:
    signed = m.sign(m.block(3, TID, 9, 0, 1, b"FEE1 block"), KEY)
    with pytest.raises(MacError) as info:
        m.verify(tamper(signed), KEY)  # type: ignore[operator]
    assert info.value.field == 64


def test_verify_refuses_another_terminals_key() -> None:
    master = bytes(range(16))
    mine, other = derive_terminal_key(master, "PF00000001"), derive_terminal_key(master, "PF02")
    signed = m.sign(m.commit(4, TID, 9, 4, DIGEST), mine)
    m.verify(signed, mine)
    with pytest.raises(MacError):
        m.verify(signed, other)


# --- the whole layer, end to end over a real pty pair --------------------------------------


class MiniTerminal:
    """Just enough of a terminal to prove the protocol layer fits together (the real
    emulated terminal lives in terminal_sim)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.blocks: list[bytes] = []
        self.active: FeeTable | None = None
        self.handled = 0

    def handle(self, body: bytes) -> bytes:
        self.handled += 1
        try:
            req = decode(body)
        except DecodeError:
            return encode(Message("0810", {39: "30"}))
        if req.mti == "0200":
            assert self.active is not None
            card = SaleRequest.from_tlv(req.binary(62)).card_type
            amount = m.parse_amount(req)
            fee = compute_fee(self.active, amount, card, 5411)
            return encode(
                m.response_to(
                    req,
                    m.ResponseCode.APPROVED,
                    {
                        4: req.text(4),
                        28: m.fee_field(fee),
                        38: "OK0001",
                        49: req.text(49),
                        62: SaleResult(self.active.version, amount - fee).to_tlv(),
                    },
                )
            )
        try:
            m.verify(req, self.key)
        except MacError:
            return encode(m.response_to(req, m.ResponseCode.MAC_FAILED))
        addr = m.block_address(req)
        if m.network_code(req) is m.NetCode.BLOCK:
            if addr.index != len(self.blocks):
                code = m.ResponseCode.OUT_OF_ORDER
            else:
                self.blocks.append(req.binary(62))
                code = m.ResponseCode.APPROVED
            nxt = m.BlockAddress(addr.version, len(self.blocks), addr.count).encode()
            return encode(m.sign(m.response_to(req, code, {61: nxt}), self.key))
        data = b"".join(self.blocks)
        try:
            table = FeeTable.from_bytes(data)
            ok = table.digest() == req.binary(62)
        except ProtocolError:
            ok = False
        if ok:
            self.active = table
        code = m.ResponseCode.APPROVED if ok else m.ResponseCode.TABLE_CHECK_FAILED
        return encode(m.sign(m.response_to(req, code), self.key))


@pytest.fixture
def wired() -> Iterator[tuple[Link, MiniTerminal]]:
    key = derive_terminal_key(bytes(range(16)), "PF00000001")
    terminal = MiniTerminal(key)
    stop = threading.Event()
    with PtyPair() as cable, Link(cable.a, 115200) as host, Link(cable.b, 115200) as far:
        thread = threading.Thread(target=far.serve_forever, args=(terminal.handle, stop))
        thread.start()
        try:
            yield host, terminal
        finally:
            stop.set()
            thread.join(5)


@pytest.mark.timeout(60)
def test_push_a_fee_table_and_sell_over_a_pty_pair(wired: tuple[Link, MiniTerminal]) -> None:
    host, terminal = wired
    key = terminal.key
    rules = [FeeRule(CardType.CREDIT, 5000, 5999, 6000, min_fee=10), FeeRule(0, 0, 9999, 3800)]
    rules += [FeeRule(CardType.DEBIT, n, n, 5000 + n) for n in range(100)]  # > 1 block
    table = FeeTable(7, datetime(2026, 12, 1, tzinfo=UTC), 156, tuple(rules))
    blocks = table.blocks()
    assert len(blocks) == 3
    stan = m.StanCounter()
    for index, data in enumerate(blocks):
        req = m.sign(m.block(stan.next(), TID, 7, index, len(blocks), data), key)
        rsp = decode(host.request(encode(req)))
        m.verify(rsp, key)
        assert rsp[39] == "00"
        assert m.block_address(rsp).index == index + 1
    req = m.sign(m.commit(stan.next(), TID, 7, len(blocks), table.digest()), key)
    rsp = decode(host.request(encode(req)))
    m.verify(rsp, key)
    assert rsp[39] == "00"
    assert terminal.active == table

    sale_req = m.sale(stan.next(), TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv())
    sale_rsp = decode(host.request(encode(sale_req)))
    assert sale_rsp[39] == "00"
    assert m.parse_fee(sale_rsp) == compute_fee(table, 10_000, CardType.CREDIT, 5411) == 60
    assert SaleResult.from_tlv(sale_rsp.binary(62)) == SaleResult(7, 9_940)


@pytest.mark.timeout(60)
def test_wrong_key_is_refused_end_to_end(wired: tuple[Link, MiniTerminal]) -> None:
    host, terminal = wired
    wrong = derive_terminal_key(bytes(range(16)), "SOMEONE-ELSE")
    req = m.sign(m.block(1, TID, 7, 0, 1, b"FEE1"), wrong)
    rsp = decode(host.request(encode(req)))
    assert rsp[39] == "A0"
    assert terminal.blocks == []


@pytest.mark.parametrize(
    "msg",
    [
        m.block(7, "TERM0001", 3, 1, 4, b"\x01" * 900),
        m.commit(12, "TERM0001", 3, 4, bytes(32)),
        Message("0810", {11: "000001", 39: "00", 41: "TERM0001", 61: "00000300040004"}),
        Message("0810", {11: "000001", 39: "00", 41: "TERM0001", 70: "001"}),  # a field after 64
    ],
)
def test_sign_encoded_is_sign_then_encode(msg: Message) -> None:
    key = bytes(range(16))
    signed, data = m.sign_encoded(msg, key)
    assert signed == m.sign(msg, key)
    assert data == encode(m.sign(msg, key))
    m.verify(decode(data), key)
