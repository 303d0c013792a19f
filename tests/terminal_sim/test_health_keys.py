"""Health and key rotation end to end: the emulated terminal served on a pty and on TCP,
HostSession on the other side (docs/protocol.md, additions to v1)."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from protocols import messages as m
from protocols.codec import Message, decode, encode
from protocols.errors import KeyVersionError, RefusedError
from protocols.health import RebootReason
from protocols.keys import KeyChange, KeyVersions
from protocols.link import Link
from protocols.mac import MasterKey, TerminalKey
from protocols.session import HostSession, KeyRotation, RotationStep
from protocols.tlv import SaleRequest
from protocols.values import CardType
from terminal_sim.rekey import KeySlots
from terminal_sim.serve import serve_terminal
from terminal_sim.terminal import Terminal
from tests.terminal_sim.conftest import KEY, MASTER, SERIAL, TID, Clock, config, make_table

pytestmark = pytest.mark.timeout(120)

K1 = TerminalKey(1, KEY)
K2 = MasterKey(2, bytes(range(100, 116))).terminal_key(SERIAL)
K3 = MasterKey(3, bytes(range(200, 216))).terminal_key(SERIAL)
FOREIGN = MasterKey(2, bytes(range(50, 66))).terminal_key(SERIAL)  # a key it never had


class Endpoint:
    """One terminal served on a pty or TCP in a thread, and the host's line to it."""

    def __init__(self, terminal: Terminal, url: str, clock: Clock, state_dir: Path) -> None:
        self.terminal, self.url, self.clock, self.state_dir = terminal, url, clock, state_dir
        self.link = Link(url, 115200)  # one host at a time, as on a serial line

    def session(self, key: bytes | TerminalKey | None = None, **kw: Any) -> HostSession:
        """A new host session (its own STANs and keys: a restarted host) on the line."""
        return HostSession(self.link, TID, key, **kw)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything a refused request must leave as it was."""
        conn = sqlite3.connect(f"file:{self.state_dir / 'terminal.db'}?mode=ro", uri=True)
        try:
            return {
                table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in ("mac_keys", "key_requests", "fee_tables", "download", "blocks")
            }
        finally:
            conn.close()


@pytest.fixture(params=["pty", "tcp"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    clock = Clock()
    state_dir = tmp_path / "state"
    terminal = Terminal(config(), state_dir, clock=clock)
    stop = threading.Event()
    ready: queue.Queue[str] = queue.Queue()
    where = "pty" if request.param == "pty" else "tcp://127.0.0.1:0"
    thread = threading.Thread(
        target=serve_terminal, args=(terminal, where, stop, ready.put), kwargs={"baud": 115200}
    )
    thread.start()
    ep = Endpoint(terminal, ready.get(timeout=10), clock, state_dir)
    try:
        yield ep
    finally:
        ep.link.close()
        stop.set()
        thread.join(10)
        terminal.close()


def send(session: HostSession, request: Message) -> Message:
    """Send ``request`` exactly as given (already signed or not), return the response."""
    return decode(session.link.request(encode(request)))


def change_request(session: HostSession, change: KeyChange, key: TerminalKey) -> Message:
    return m.sign(m.key_change(session.stan.next(), TID, change.to_tlv()), key.key)


# --- health -----------------------------------------------------------------------------------


def test_health_in_sign_on_and_by_poll(endpoint: Endpoint) -> None:
    host = endpoint.session(K1)
    signed_on = host.sign_on()
    assert signed_on.keys == KeyVersions(1, 0)
    health = signed_on.health
    assert health is not None
    assert (health.card_reads.chip, health.card_reads.contactless) == (0, 0)
    assert health.battery is None  # a PF-200 is mains powered
    assert health.printer is not None and health.printer.lines == 0
    assert health.last_reboot is RebootReason.POWER_ON and not health.tampered
    host.push(make_table(3))
    for entry in (m.EntryMode.CHIP, m.EntryMode.CHIP, m.EntryMode.CONTACTLESS):
        assert host.sale(10_000, CardType.CREDIT, entry).approved
    assert host.sale(10_000, CardType.INTERNATIONAL, m.EntryMode.MAGSTRIPE).code == "57"
    assert host.sale(10_000, CardType.QR_WALLET, m.EntryMode.QR).code == "57"
    endpoint.clock.now += 125
    polled = host.health()
    reads = polled.card_reads
    assert (reads.chip, reads.contactless, reads.magstripe) == (2, 1, 1)
    assert polled.printer is not None and polled.printer.lines == 3 * 40 + 2 * 8
    assert polled.uptime == 125
    assert polled.free_storage == health.free_storage - 5 * 256
    assert polled == endpoint.terminal.health()
    assert host.sign_on().health == polled


# --- key rotation -----------------------------------------------------------------------------


def test_rotation_then_the_old_key_is_refused(endpoint: Endpoint) -> None:
    host = endpoint.session(keys=[K1, K2, K3])
    host.push(make_table(3))
    steps: list[RotationStep] = []
    result = host.rotate_key(K2, steps.append)
    assert result == KeyRotation(version=2, previous=1, changed=True, already=False)
    assert result.keys == KeyVersions(2, 0)  # what the confirmation's answer reported
    assert steps == [RotationStep.SIGNED_ON, RotationStep.CHANGED, RotationStep.CONFIRMED]
    assert host.sign_on().keys == KeyVersions(2, 0) and host.key_version == 2
    assert endpoint.terminal.key_slots() == KeySlots(K2)
    # a request MAC'd with the old key: A0, and nothing changes
    before = endpoint.snapshot()
    old = endpoint.session(K1.key)
    with pytest.raises(RefusedError) as info:
        old.push(make_table(4))
    assert info.value.code == "A0"
    assert endpoint.snapshot() == before
    # the new key works for everything
    host.push(make_table(4))
    assert host.sale(10_000, CardType.CREDIT).table_version == 4
    again = host.rotate_key(K2)
    assert again == KeyRotation(2, 2, changed=False, already=True)
    assert again.keys == KeyVersions(2, 0)  # what the sign-on reported
    assert host.rotate_key(K3).version == 3
    with pytest.raises(KeyVersionError, match="holds key version 3, newer than 2"):
        host.rotate_key(K2)


def test_everything_works_in_the_middle_of_a_rotation(endpoint: Endpoint) -> None:
    first = endpoint.session(K1)
    assert first.change_key(K2) == KeyVersions(1, 2)
    # the host crashed here; sessions with either key version keep working
    both = endpoint.session(keys=[K1, K2])
    assert both.sign_on().keys == KeyVersions(1, 2) and both.key_version == 1
    both.push(make_table(3))
    only_new = endpoint.session(keys=[K2])
    assert only_new.sign_on().keys == KeyVersions(1, 2) and only_new.key_version == 2
    only_new.push(make_table(4))  # the terminal accepts its next key before confirmation
    assert only_new.sale(10_000, CardType.CREDIT).table_version == 4
    # recovery resumes with the confirmation only
    result = only_new.rotate_key(K2)
    assert result == KeyRotation(2, 1, changed=False, already=False)
    assert endpoint.terminal.key_slots() == KeySlots(K2)
    with pytest.raises(KeyVersionError, match="has key versions \\[1\\]; the terminal holds 2"):
        old = endpoint.session(keys=[K1])
        old.sign_on()
        old.push(make_table(5))


def test_a_host_that_crashed_resends_or_confirms(endpoint: Endpoint) -> None:
    for _ in range(2):  # a change sent again by a restarted host (a new STAN): 00, no change
        assert endpoint.session(K1).change_key(K2) == KeyVersions(1, 2)
    assert endpoint.terminal.key_slots() == KeySlots(K1, K2)
    for _ in range(2):  # a confirmation sent again after the switch: 00, no change
        assert endpoint.session(K1).confirm_key(K2) == KeyVersions(2, 0)
    assert endpoint.terminal.key_slots() == KeySlots(K2)


def test_a_resend_is_answered_from_cache_and_a_replay_refused_94(endpoint: Endpoint) -> None:
    host = endpoint.session(K1)
    host.push(make_table(3))
    req = change_request(host, KeyChange.build(K1, K2), K1)
    first = send(host, req)
    assert first[39] == "00"
    m.verify(first, K1.key)
    state = endpoint.snapshot()
    assert send(host, req) == first  # the same bytes again at once: the v1 resend rule
    assert endpoint.snapshot() == state
    assert host.sale(10_000, CardType.CREDIT).approved  # another request in between
    state = endpoint.snapshot()
    replayed = send(host, req)
    assert replayed[39] == "94"
    m.verify(replayed, K1.key)
    assert endpoint.snapshot() == state
    # after the switch the replay fails its MAC: the old key is gone
    host.confirm_key(K2)
    state = endpoint.snapshot()
    assert send(host, req)[39] == "A0"
    assert endpoint.snapshot() == state


def test_wrong_check_value_foreign_key_and_old_version_are_refused(endpoint: Endpoint) -> None:
    host = endpoint.session(K1)
    host.sign_on()
    good = KeyChange.build(K1, K2)
    cases = [
        (change_request(host, KeyChange(2, good.wrapped, b"\x00\x00\x00"), K1), "F2"),
        (change_request(host, KeyChange.build(FOREIGN, K2), K1), "F2"),  # wrapped elsewhere
        (change_request(host, good, FOREIGN), "A0"),  # MAC'd with a key it never had
        (m.sign(m.key_confirm(host.stan.next(), TID, b"\x21\x04\x00\x00\x00\x02"), FOREIGN.key),
         "A0"),
        (change_request(host, KeyChange.build(K1, TerminalKey(1, K3.key)), K1), "76"),
        (change_request(host, KeyChange.build(K1, TerminalKey(2, K1.key)), K1), "12"),
        (m.key_change(host.stan.next(), TID, good.to_tlv()), "A0"),  # no MAC at all
    ]  # fmt: skip
    endpoint.terminal.health()  # boot first, so the snapshot has every table
    state = endpoint.snapshot()
    for request, code in cases:
        response = send(host, request)
        assert response[39] == code, (request, response)
        m.verify(response, K1.key)  # refusals are signed with the current key
        assert endpoint.snapshot() == state
    assert endpoint.terminal.key_slots() == KeySlots(K1)
    host.push(make_table(3))  # and the current key still works


def test_keys_survive_a_restart_and_win_over_the_configuration(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    terminal = Terminal(config(), state_dir)
    change = m.sign(m.key_change(7, TID, KeyChange.build(K1, K2).to_tlv()), K1.key)
    assert decode(terminal.handle(encode(change)) or b"")[39] == "00"
    terminal.close()
    again = Terminal(config(), state_dir)  # configured with the v1 key, as at the factory
    assert again.key_slots() == KeySlots(K1, K2)
    confirm = m.sign(m.key_confirm(8, TID, b"\x21\x04\x00\x00\x00\x02"), K2.key)
    assert decode(again.handle(encode(confirm)) or b"")[39] == "00"
    again.close()
    third = Terminal(config(), state_dir)
    assert third.key_slots() == KeySlots(K2)
    assert third.health().last_reboot is RebootReason.RESTART  # closed cleanly before
    third.close()


def test_a_v1_style_session_without_key_versions_still_works(endpoint: Endpoint) -> None:
    """A host that gives one bare key (as every v1 caller does) and never asks versions."""
    host = endpoint.session(KEY)
    host.push(make_table(3))
    assert host.key_version is None and host.sign_on().key_versions == KeyVersions(1)
    assert host.rotate_key(K2).changed  # it takes the bare key for the current one


def test_tampered_terminal_refuses_downloads_and_key_changes_66(endpoint: Endpoint) -> None:
    host = endpoint.session(K1)
    host.push(make_table(3))
    store = endpoint.terminal.store
    with store.transaction() as conn:  # as `possim tamper` does, from another connection
        at = store.trip_tamper(conn, int(endpoint.clock.now))
    signed_on = host.sign_on()
    assert signed_on.health is not None and signed_on.health.tampered_at == at
    state = endpoint.snapshot()
    with pytest.raises(RefusedError) as info:
        host.push(make_table(4))
    assert info.value.code == "66"
    with pytest.raises(RefusedError) as info:
        host.rotate_key(K2)
    assert info.value.code == "66"
    assert endpoint.snapshot() == state
    assert host.sale(10_000, CardType.CREDIT).approved  # sales still answer
    assert host.health().tampered
    sale = m.sale(host.stan.next(), TID, 1, SaleRequest(CardType.CREDIT).to_tlv())
    assert send(host, sale)[39] == "00"


def test_an_unreadable_key_change_is_30_signed_and_changes_nothing(endpoint: Endpoint) -> None:
    host = endpoint.session(K1)
    endpoint.terminal.health()
    state = endpoint.snapshot()
    for tlv in (b"", b"\x21\x04\x00\x00\x00\x02", b"\x21\x04\x00\x00"):
        response = send(host, m.sign(m.key_change(host.stan.next(), TID, tlv), K1.key))
        assert response[39] == "30"
        m.verify(response, K1.key)  # its MAC was checked: the answer is signed
    # exchange() verifies the MAC of any answer but A0: a 30 to a signed request is signed
    assert host.exchange(m.key_confirm(host.stan.next(), TID, b""), signed=True)[39] == "30"
    assert endpoint.snapshot() == state


def test_rotate_a_few_terminals_on_ptys_at_once(tmp_path: Path) -> None:
    masters = [MasterKey(1, MASTER), MasterKey(2, bytes(range(100, 116)))]
    serials = [f"PF{n:08d}" for n in range(1, 5)]
    stop = threading.Event()
    served: list[tuple[str, Terminal, str]] = []
    threads = []
    try:
        for serial in serials:
            terminal = Terminal(config(serial), tmp_path / serial)
            ready: queue.Queue[str] = queue.Queue()
            thread = threading.Thread(
                target=serve_terminal,
                args=(terminal, "pty", stop, ready.put),
                kwargs={"baud": 115200},
            )
            thread.start()
            threads.append(thread)
            served.append((serial, terminal, ready.get(timeout=10)))

        def rotate(item: tuple[str, Terminal, str]) -> KeyRotation:
            serial, _, path = item
            old, new = (master.terminal_key(serial) for master in masters)
            with Link(path, 115200) as link:
                host = HostSession(link, TID, keys=[old, new])
                host.push(make_table(3))
                result = host.rotate_key(new)
                assert host.sale(10_000, CardType.CREDIT).approved
                return result

        with ThreadPoolExecutor(len(served)) as pool:
            results = list(pool.map(rotate, served))
        assert {(r.version, r.previous, r.changed) for r in results} == {(2, 1, True)}
        for serial, terminal, _ in served:
            assert terminal.key_slots() == KeySlots(masters[1].terminal_key(serial))
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for _, terminal, _ in served:
            terminal.close()
