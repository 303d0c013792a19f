"""The engine's health poll, key rotation and versioned keys against a fleet of emulated
terminals served by FleetServer (one loop thread + handler pool): health_job, rotate_job,
push_job with a key ring, and the refusals a rollout worker must tell apart (66, 94, F2,
no key of the terminal's version) — typed, never retryable, nothing changed."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from protocols import messages as m
from protocols.codec import encode
from protocols.engine import (
    CheckError,
    Engine,
    HealthOutcome,
    Job,
    Outcome,
    RotateOutcome,
    health_job,
    push_job,
    rotate_job,
)
from protocols.errors import (
    KeyCheckError,
    KeyVersionError,
    RefusedError,
    ReplayedError,
    TamperedError,
)
from protocols.flows import Conversation, Flow, PreparedTable, RotationStep, refused
from protocols.health import RebootReason
from protocols.keys import KeyChange, KeyVersions, TerminalKeyRing
from protocols.link import Link
from protocols.mac import MasterKey, TerminalKey
from protocols.session import HostSession
from protocols.values import CardType
from terminal_sim.serve import FleetServer
from terminal_sim.terminal import Terminal
from terminal_sim.wear import PROFILES, InitialWear, Wear
from tests.terminal_sim.conftest import MASTER, TID, config, fleet_serving, make_table

pytestmark = pytest.mark.timeout(120)
M1 = MasterKey(1, MASTER)
M2 = MasterKey(2, bytes(range(100, 116)))
M3 = MasterKey(3, bytes(range(200, 216)))
COUNT = 6


def serial(n: int) -> str:
    return f"PF{n:08d}"


def worn(n: int) -> InitialWear:
    """Terminal n's first-boot wear: n thousand chip reads; terminal 0 tampered."""
    wear = dataclasses.replace(Wear.fresh(PROFILES["PF-200"]), chip=n * 1000, magstripe=3)
    tampered = datetime(2026, 10, 1, tzinfo=UTC) if n == 0 else None
    return InitialWear(wear, tampered)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    terminals = [
        Terminal(config(serial(n)), tmp_path / f"t{n}", wear=lambda n=n: worn(n))
        for n in range(COUNT)
    ]
    with fleet_serving(terminals) as server:
        yield server


def ring(n: int, *masters: MasterKey) -> TerminalKeyRing:
    return TerminalKeyRing.derived(masters or (M1, M2, M3), serial(n))


def snapshot(fleet: FleetServer, n: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every table a refused request must leave as it was."""
    path = fleet.slots[n].terminal.store.path
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("mac_keys", "key_requests", "fee_tables", "download", "blocks", "wear")
        }
    finally:
        conn.close()


def run(*jobs: Job, concurrency: int = 8) -> list[Outcome]:
    """Run ``jobs``; outcomes in the order of the jobs."""
    with Engine(concurrency=concurrency) as engine:
        outcomes = {id(o.job): o for o in engine.run(jobs)}
    return [outcomes[id(job)] for job in jobs]


def test_health_job_polls_every_terminal(fleet: FleetServer) -> None:
    urls = [slot.url for slot in fleet.slots]
    polled = run(*(health_job(url, TID, tag=n) for n, url in enumerate(urls)))
    checked = run(*(health_job(url, TID, serial=serial(n)) for n, url in enumerate(urls)))
    for n, (poll, sign_on) in enumerate(zip(polled, checked, strict=True)):
        assert poll.ok and sign_on.ok, (poll.error, sign_on.error)
        got: HealthOutcome = poll.value
        assert got.signed_on is None and got.health is not None  # the 303 poll alone
        assert got.health.card_reads.chip == n * 1000
        assert got.health.tampered == (n == 0)
        assert got.health.last_reboot is RebootReason.POWER_ON
        assert sign_on.value.signed_on.info.serial == serial(n)
        assert sign_on.value.health.card_reads == got.health.card_reads  # from the sign-on
    [wrong] = run(health_job(urls[1], TID, serial="PF-OTHER"))
    assert isinstance(wrong.error, CheckError) and not wrong.retryable
    assert wrong.job.state.signed_on.info.serial == serial(1)


def test_rotate_jobs_then_pushes_sign_with_the_new_key(fleet: FleetServer) -> None:
    live = range(1, COUNT)  # terminal 0 is tampered
    urls = {n: fleet.slots[n].url for n in live}
    table = PreparedTable(make_table(4, rules=120))
    rotations = [rotate_job(urls[n], TID, ring(n), M2.terminal_key(serial(n))) for n in live]
    done = run(*rotations)
    for outcome in done:
        assert outcome.ok, outcome.error
        rotated: RotateOutcome = outcome.value
        assert rotated.steps == [
            RotationStep.SIGNED_ON,
            RotationStep.CHANGED,
            RotationStep.CONFIRMED,
        ]
        assert rotated.rotation is not None and rotated.rotation.changed
        assert rotated.versions == KeyVersions(2, 0)
        assert rotated.signed_on is not None and rotated.signed_on.keys == KeyVersions(1, 0)
    again = run(*rotations)  # the same jobs again: their state starts afresh
    assert all(o.ok and o.value.rotation.already for o in again)
    assert all(o.value.steps == [RotationStep.SIGNED_ON] for o in again)
    assert all(o.value.versions == o.value.signed_on.keys == KeyVersions(2, 0) for o in again)
    # pushes with the ring sign with the version each terminal reports: 2 now
    pushed = run(*(push_job(urls[n], TID, ring(n), table, serial=serial(n)) for n in live))
    assert all(o.ok for o in pushed), [o.error for o in pushed]
    for n in live:
        active = fleet.slots[n].terminal.store.table("active")
        assert active is not None and active.version == 4
    # the old key alone is refused: A0, not retryable
    [old] = run(
        push_job(urls[1], TID, M1.terminal_key(serial(1)).key, PreparedTable(make_table(5)))
    )
    assert isinstance(old.error, RefusedError) and old.code == "A0" and not old.retryable


def test_a_push_in_the_middle_of_a_rotation_uses_the_next_key(fleet: FleetServer) -> None:
    slot, n = fleet.slots[2], 2
    with Link(slot.url, 115200) as link:  # a rotation that stopped after the change
        assert HostSession(link, TID, M1.terminal_key(serial(n))).change_key(
            M2.terminal_key(serial(n))
        ) == KeyVersions(1, 2)
    table = PreparedTable(make_table(6, rules=60))
    only_next = TerminalKeyRing([M2.terminal_key(serial(n))])
    [pushed] = run(push_job(slot.url, TID, only_next, table, serial=serial(n)))
    assert pushed.ok, pushed.error
    assert pushed.value.signed_on.keys == KeyVersions(1, 2)
    [rotated] = run(rotate_job(slot.url, TID, ring(n), M2.terminal_key(serial(n))))
    assert rotated.ok and not rotated.value.rotation.changed  # only the confirmation
    assert rotated.value.steps == [RotationStep.SIGNED_ON, RotationStep.CONFIRMED]
    assert slot.terminal.key_slots().versions == KeyVersions(2, 0)


def test_no_key_of_the_terminals_version_fails_before_anything_is_signed(
    fleet: FleetServer,
) -> None:
    slot, n = fleet.slots[3], 3
    [rotated] = run(rotate_job(slot.url, TID, ring(n), M3.terminal_key(serial(n))))
    assert rotated.ok  # the terminal holds version 3 now
    before = snapshot(fleet, n)
    table = PreparedTable(make_table(7, rules=60))
    jobs = [
        push_job(slot.url, TID, ring(n, M1, M2), table),
        rotate_job(slot.url, TID, ring(n, M1), M2.terminal_key(serial(n))),  # older than held
        push_job(slot.url, TID, [M1.terminal_key(serial(n))], table),
    ]
    with Engine(concurrency=1) as engine:
        outcomes = list(engine.run(jobs))
        sent = engine.stats.frames_sent
    assert sent == len(jobs)  # one sign-on each, nothing signed
    for outcome in outcomes:
        assert isinstance(outcome.error, KeyVersionError) and not outcome.retryable
        assert outcome.error.held == (3, 0)
        assert outcome.job.state.signed_on.keys == KeyVersions(3, 0)
    assert "no key to sign with" in str(outcomes[0].error)
    assert "newer than 2" in str(outcomes[1].error)
    assert snapshot(fleet, n) == before


def test_a_tampered_terminal_refuses_pushes_and_rotations_66(fleet: FleetServer) -> None:
    slot = fleet.slots[0]
    [polled] = run(health_job(slot.url, TID))  # boots it: its state file exists
    assert polled.ok and polled.value.health.tampered
    before = snapshot(fleet, 0)
    pushed, rotated = run(
        push_job(slot.url, TID, ring(0), PreparedTable(make_table(4, rules=60))),
        rotate_job(slot.url, TID, ring(0), M2.terminal_key(serial(0))),
        concurrency=1,
    )
    for outcome in (pushed, rotated):
        assert isinstance(outcome.error, TamperedError), outcome.error
        assert outcome.code == "66" and not outcome.retryable
        assert "tampered" in str(outcome.error)
    assert rotated.value is None and rotated.job.state.steps == [RotationStep.SIGNED_ON]
    after = snapshot(fleet, 0)
    assert {k: v for k, v in after.items() if k != "wear"} == {
        k: v for k, v in before.items() if k != "wear"
    }


def _refused_key_change(tid: str, current: TerminalKey, change: KeyChange) -> Flow[None]:
    """Sign on, send ``change`` signed with ``current``; raise the terminal's refusal."""
    conv = Conversation(tid, current)
    yield from conv.sign_on()
    request = m.sign(m.key_change(conv.next_stan(), tid, change.to_tlv()), current.key)
    yield from conv.ok(request, signed=True, key=current.key, what="key change")


def _replayed_key_change(tid: str, current: TerminalKey, new: TerminalKey) -> Flow[None]:
    """A key change accepted, a sale in between, then the very same bytes again."""
    conv = Conversation(tid, current)
    yield from conv.sign_on()
    change = KeyChange.build(current, new)
    request = m.sign(m.key_change(conv.next_stan(), tid, change.to_tlv()), current.key)
    body, stan = encode(request), str(request[11])
    first = yield from conv.exchange_encoded(body, stan, verify_with=current.key)
    assert first[39] == "00"
    yield from conv.sale(10_000, CardType.CREDIT)
    again = yield from conv.exchange_encoded(body, stan, verify_with=current.key)
    raise refused("the replayed key change", again)


def test_a_bad_check_value_is_f2_and_a_replay_94_typed_and_final(fleet: FleetServer) -> None:
    n, slot = 4, fleet.slots[4]
    assert run(health_job(slot.url, TID))[0].ok  # boots it: its state file exists
    current, new = M1.terminal_key(serial(n)), M2.terminal_key(serial(n))
    wrong_kcv = KeyChange(2, KeyChange.build(current, new).wrapped, b"\0\0\0")
    foreign = KeyChange.build(M3.terminal_key(serial(n)), new)  # wrapped under a key it lacks
    before = snapshot(fleet, n)
    kcv, wrapped = run(
        Job(slot.url, lambda: _refused_key_change(TID, current, wrong_kcv)),
        Job(slot.url, lambda: _refused_key_change(TID, current, foreign)),
        concurrency=1,
    )
    for outcome in (kcv, wrapped):
        assert isinstance(outcome.error, KeyCheckError) and outcome.code == "F2"
        assert not outcome.retryable
    assert snapshot(fleet, n) == before
    [replay] = run(Job(slot.url, lambda: _replayed_key_change(TID, current, new)))
    assert isinstance(replay.error, ReplayedError) and replay.code == "94"
    assert not replay.retryable
    assert fleet.slots[n].terminal.key_slots().versions == KeyVersions(1, 2)  # the first one
