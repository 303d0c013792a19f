"""The emulated terminal over a real pty: every catalog message and every response code."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import RefusedError
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.session import HostSession
from protocols.tlv import DownloadStatus, SaleRequest
from protocols.values import Capability, CardType
from tests.terminal_sim.conftest import KEY, MID, SERIAL, TID, Served, make_table

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def host(served: Served) -> Iterator[HostSession]:
    session = served.session()
    try:
        yield session
    finally:
        session.link.close()


def raw(host: HostSession, msg: Message, *, signed: bool = False) -> Message:
    """One exchange without HostSession's checks: the response as the terminal sent it."""
    if signed:
        msg = m.sign(msg, host.key)
    return decode(host.link.request(encode(msg)))


def test_sign_on_echo_and_status_on_a_fresh_terminal(host: HostSession) -> None:
    signon = host.sign_on()
    assert signon.mid == MID
    info = signon.info
    assert (info.model, info.serial, info.firmware, info.mcc) == ("PF-200", SERIAL, "1.4.2", 5411)
    assert info.capabilities == Capability.CHIP | Capability.CONTACTLESS | Capability.MAGSTRIPE
    assert (info.active_version, info.pending_version) == (0, 0)
    assert not info.partial.in_progress
    host.echo()
    assert host.status() == DownloadStatus(0, 0)


def test_push_commit_activate_and_sell(host: HostSession, served: Served) -> None:
    table = make_table(3, rules=120)  # 2.5 KiB: three blocks
    result = host.push(table)
    assert (result.blocks, result.resumed_from, result.sent, result.already) == (3, 0, 3, False)
    info = host.sign_on().info
    assert (info.active_version, info.pending_version) == (3, 0)  # effective in the past
    stored = served.terminal.store.table("active")
    assert stored is not None and stored.data == table.to_bytes()
    assert host.push(table).already
    # sales: credit in MCC 5411 → 0.60% with a 0.10 minimum; debit → 0.3803%
    sale = host.sale(10_000, CardType.CREDIT)
    assert (sale.code, sale.fee, sale.net, sale.table_version) == ("00", 60, 9_940, 3)
    assert sale.approval is not None and len(sale.approval) == 6
    assert host.sale(1_000, CardType.CREDIT).fee == 10
    assert host.sale(10_000, CardType.DEBIT).fee == 38


def test_no_rule_and_no_table_answer_57(host: HostSession) -> None:
    assert host.sale(10_000, CardType.CREDIT).code == "57"  # no table at all yet
    host.push(make_table(1))
    assert host.sale(10_000, CardType.INTERNATIONAL).code == "57"


def test_pending_until_effective_then_active(host: HostSession, served: Served) -> None:
    host.push(make_table(1))
    later = datetime.fromtimestamp(served.clock.now, UTC) + timedelta(days=30)
    host.push(make_table(2, effective=later))
    info = host.sign_on().info
    assert (info.active_version, info.pending_version) == (1, 2)
    assert info.pending_effective == later
    assert host.sale(10_000, CardType.DEBIT).table_version == 1  # the old table still prices
    served.clock.now = later.timestamp()
    info = host.sign_on().info
    assert (info.active_version, info.pending_version) == (2, 0)
    assert host.sale(10_000, CardType.DEBIT).table_version == 2


def test_older_version_is_refused_76(host: HostSession) -> None:
    host.push(make_table(5))
    with pytest.raises(RefusedError) as info:
        host.push(make_table(4))
    assert info.value.code == "76"


def test_blocks_out_of_order_77_and_repeats_00(host: HostSession) -> None:
    table = make_table(7, rules=120)
    blocks = table.blocks()
    first = raw(host, m.block(host.stan.next(), TID, 7, 0, 3, blocks[0]), signed=True)
    assert first[39] == "00" and m.block_address(first).index == 1
    skip = raw(host, m.block(host.stan.next(), TID, 7, 2, 3, blocks[2]), signed=True)
    assert skip[39] == "77" and m.block_address(skip).index == 1
    again = raw(host, m.block(host.stan.next(), TID, 7, 0, 3, blocks[0]), signed=True)
    assert again[39] == "00" and m.block_address(again).index == 1
    m.verify(again, KEY)  # responses to 360 carry the terminal's MAC
    # a commit before every block arrived: 77, pointing at the missing block
    early = raw(host, m.commit(host.stan.next(), TID, 7, 3, table.digest()), signed=True)
    assert early[39] == "77" and m.block_address(early).index == 1
    result = host.push(table)  # resumes where the terminal is
    assert (result.resumed_from, result.sent) == (1, 2)


def test_bad_or_missing_mac_is_refused_a0_and_changes_nothing(host: HostSession) -> None:
    table = make_table(2)
    block = m.block(host.stan.next(), TID, 2, 0, 1, table.blocks()[0])
    unsigned = raw(host, block)
    assert unsigned[39] == "A0"
    wrong = derive_terminal_key(bytes(16), SERIAL)
    assert raw(host, m.sign(block, wrong))[39] == "A0"
    tampered = m.sign(block, KEY)
    tampered.fields[62] = b"X" + tampered.binary(62)[1:]
    assert raw(host, tampered)[39] == "A0"
    assert not host.sign_on().info.partial.in_progress
    with pytest.raises(RefusedError) as info:
        HostSession(host.link, TID, wrong).push(table)
    assert info.value.code == "A0"


def test_digest_crc_or_format_failure_is_f1(host: HostSession) -> None:
    table = make_table(9)
    data = table.to_bytes()
    blk = raw(host, m.block(host.stan.next(), TID, 9, 0, 1, data), signed=True)
    assert blk[39] == "00"
    wrong_digest = raw(host, m.commit(host.stan.next(), TID, 9, 1, bytes(32)), signed=True)
    assert wrong_digest[39] == "F1"
    # a file whose digest matches but whose CRC does not
    broken = data[:-1] + bytes([data[-1] ^ 1])
    assert raw(host, m.block(host.stan.next(), TID, 9, 0, 1, broken), signed=True)[39] == "00"
    digest = hashlib.sha256(broken).digest()
    assert raw(host, m.commit(host.stan.next(), TID, 9, 1, digest), signed=True)[39] == "F1"
    assert host.sign_on().info.active_version == 0


def test_unknown_tid_63(served: Served) -> None:
    other = served.session(tid="OTHER001")
    try:
        with pytest.raises(RefusedError) as info:
            other.sign_on()
        assert info.value.code == "63"
        assert other.sale(100, CardType.CREDIT).code == "63"
    finally:
        other.link.close()


def test_malformed_requests_30_and_invalid_requests_12(host: HostSession) -> None:
    # field 11 says numeric but holds letters: the codec refuses it → 30
    body = encode(m.echo(1, TID)).replace(b"000001", b"00000X")
    assert decode(host.link.request(body))[39] == "30"
    assert decode(host.link.request(b"\x00garbage"))[39] == "30"
    # missing STAN → 30
    assert raw(host, Message("0800", {41: TID, 60: "00000000301"}))[39] == "30"
    # an MTI the catalog does not have → 12, an unknown 60.3 → 30 (unreadable field 60)
    assert raw(host, Message("0400", {11: "000002", 41: TID}))[39] == "12"
    assert raw(host, Message("0800", {11: "000003", 41: TID, 60: "00000000999"}))[39] == "30"
    # a sale that is not a sale (processing code 01xxxx) → 12
    sale = m.sale(host.stan.next(), TID, 100, SaleRequest(CardType.CREDIT).to_tlv())
    sale.fields[3] = "010000"
    assert raw(host, sale)[39] == "12"
    host.echo()  # and it keeps serving


def test_terminal_error_96_when_its_state_store_fails(host: HostSession, served: Served) -> None:
    host.push(make_table(1))
    served.terminal.store.close()
    (served.state_dir / "terminal.db").write_bytes(b"this is not a database" * 100)
    for extra in ("-wal", "-shm"):
        (served.state_dir / f"terminal.db{extra}").unlink(missing_ok=True)
    outcome = host.sale(10_000, CardType.CREDIT)
    assert outcome.code == "96"
    host.echo()  # still answering


def test_a_resent_sale_is_not_booked_twice(host: HostSession, served: Served) -> None:
    host.push(make_table(1))
    sale = m.sale(host.stan.next(), TID, 10_000, SaleRequest(CardType.CREDIT).to_tlv())
    first = raw(host, sale)
    # a second Link (as after a host restart) sends the very same bytes again
    again = decode(host.link.request(encode(sale)))
    assert first == again
    assert len(served.terminal.store.sales()) == 1
    # the same STAN with different content is a new request
    other = m.sale(int(sale.text(11)), TID, 20_000, SaleRequest(CardType.CREDIT).to_tlv())
    assert m.parse_amount(raw(host, other)) == 20_000
    assert len(served.terminal.store.sales()) == 2


def test_sale_is_recorded(host: HostSession, served: Served) -> None:
    host.push(make_table(1))
    host.sale(12_345, CardType.CREDIT)
    host.sale(1, CardType.INTERNATIONAL)
    sales = served.terminal.store.sales()
    assert [(s.amount, s.code) for s in sales] == [(1, "57"), (12_345, "00")]
    assert sales[1].fee == 74 and sales[1].net == 12_271


def test_state_store_is_sqlite_in_wal_mode(host: HostSession, served: Served) -> None:
    host.push(make_table(1))
    conn = sqlite3.connect(served.state_dir / "terminal.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        roles = conn.execute("SELECT version, role FROM fee_tables").fetchall()
        assert roles == [(1, "active")]
    finally:
        conn.close()


def test_link_is_reusable_after_the_host_goes_away(served: Served) -> None:
    for _ in range(3):
        link = Link(served.path, 115200)
        HostSession(link, TID, KEY).echo()
        link.close()
