"""The host's many-links engine (protocols.engine) against a fleet of emulated terminals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols.engine import CheckError, Engine, Job, Outcome, PushOutcome, VerifySale, push_job
from protocols.errors import LinkError, RefusedError
from protocols.flows import Conversation, PreparedTable
from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.session import HostSession
from protocols.values import CardType
from terminal_sim.serve import FleetServer
from terminal_sim.state import StateStore
from terminal_sim.terminal import Terminal
from tests.terminal_sim.conftest import MASTER, TID, config, fleet_serving, make_table

pytestmark = pytest.mark.timeout(120)
POSSIM = str(Path(sys.executable).with_name("possim"))
SALE = VerifySale(10_000, CardType.CREDIT)


def serving(tmp_path: Path, count: int, **kw: float) -> Iterator[FleetServer]:
    terminals = [Terminal(config(f"PF{n:08d}"), tmp_path / f"t{n}") for n in range(count)]
    with fleet_serving(terminals, seed=7, **kw) as server:
        yield server


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    yield from serving(tmp_path, 12)


def jobs(fleet: FleetServer, table: PreparedTable, **kw: object) -> list[Job]:
    return [
        push_job(
            slot.url,
            TID,
            derive_terminal_key(MASTER, slot.terminal.config.serial),
            table,
            serial=slot.terminal.config.serial,
            sale=SALE,
            tag=slot,
            **kw,  # type: ignore[arg-type]
        )
        for slot in fleet.slots
    ]


def test_push_to_every_terminal_then_already(fleet: FleetServer) -> None:
    table = PreparedTable(make_table(4, rules=200))
    with Engine(concurrency=5) as engine:
        outcomes = list(engine.run(jobs(fleet, table)))
        assert [o.error for o in outcomes] == [None] * 12
        for outcome in outcomes:
            pushed: PushOutcome = outcome.value
            assert pushed.result is not None and not pushed.result.already
            assert pushed.result.sent == table.count
            assert pushed.status is not None and pushed.status.active_version == 4
            assert pushed.sale is not None and pushed.sale.fee == 60
            stored = outcome.job.tag.terminal.store.table("active")
            assert stored is not None and stored.data == table.table.to_bytes()
        again = list(engine.run(jobs(fleet, table)))
        assert all(o.ok and o.value.result.already for o in again)
        assert engine.stats.frames_sent > 12 * (table.count + 4)


def test_push_resumes_a_partial_download(fleet: FleetServer) -> None:
    table = PreparedTable(make_table(5, rules=200))
    slot = fleet.slots[0]
    key = derive_terminal_key(MASTER, slot.terminal.config.serial)
    with Link(slot.url, 115200) as link:
        session = HostSession(link, TID, key)
        for index in range(3):  # three blocks by hand, then the link goes away
            session.exchange(
                __import__("protocols.messages").messages.block(
                    session.conversation.next_stan(), TID, 5, index, table.count,
                    table.blocks[index],
                ),
                signed=True,
            )  # fmt: skip
    with Engine() as engine:
        [outcome] = engine.run([push_job(slot.url, TID, key, table)])
    assert outcome.ok, outcome.error
    assert outcome.value.result.resumed_from == 3
    assert outcome.value.result.sent == table.count - 3


def test_refusals_and_checks_are_not_retryable(fleet: FleetServer) -> None:
    table = PreparedTable(make_table(6, rules=20))
    slot = fleet.slots[1]
    right = derive_terminal_key(MASTER, slot.terminal.config.serial)
    wrong_key = push_job(slot.url, TID, bytes(16), table)
    wrong_serial = push_job(slot.url, TID, right, table, serial="PF-OTHER")
    with Engine() as engine:
        first, second = engine.run([wrong_key, wrong_serial])
    by_job = {id(o.job): o for o in (first, second)}
    refused, checked = by_job[id(wrong_key)], by_job[id(wrong_serial)]
    assert isinstance(refused.error, RefusedError) and refused.error.code == "A0"
    assert isinstance(checked.error, CheckError) and "PF-OTHER" in str(checked.error)
    assert not refused.retryable and not checked.retryable
    assert refused.job.state.signed_on is not None  # what it learnt before failing


def test_a_closed_port_and_a_bad_url_fail_as_link_errors() -> None:
    flow = lambda: Conversation(TID, bytes(16)).echo()  # noqa: E731
    # the port held bound, never listening, for the whole run: nothing else can take it
    with socket.socket() as s, Engine() as engine:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        refused, bad = engine.run(
            [Job(f"socket://127.0.0.1:{port}", flow), Job("/dev/ttyS0", flow)]
        )
    for outcome in (refused, bad):
        assert isinstance(outcome.error, LinkError) and outcome.retryable
    assert "cannot open" in str(refused.error) and "socket://" in str(bad.error)


def test_lossy_lines_converge_with_retries(tmp_path: Path) -> None:
    for fleet in serving(tmp_path, 10, drop=0.15, corrupt=0.05):
        table = PreparedTable(make_table(8, rules=120))
        todo = jobs(fleet, table)
        done: list[Outcome] = []
        with Engine(concurrency=10, t1_margin=0.2) as engine:
            for _ in range(6):
                retry = []
                for outcome in engine.run(todo):
                    (done if outcome.ok else retry).append(outcome if outcome.ok else outcome.job)
                todo = retry  # type: ignore[assignment]
                if not todo:
                    break
            assert todo == [] and len(done) == 10
            assert engine.stats.resends > 0
        assert sum(i.dropped for i in fleet.injectors) > 0
        for slot in fleet.slots:
            stored = slot.terminal.store.table("active")
            assert stored is not None and stored.version == 8


def test_submit_from_threads_while_the_loop_runs_in_its_own(fleet: FleetServer) -> None:
    table = PreparedTable(make_table(9, rules=60))
    engine = Engine(concurrency=4)
    engine.start()
    try:
        futures = [engine.submit(job) for job in jobs(fleet, table)]
        outcomes = [f.result(timeout=60) for f in futures]
    finally:
        engine.close()
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    with pytest.raises(RuntimeError):
        Engine().submit(jobs(fleet, table)[0])


def _possim_fleet(
    state: Path, key_file: Path, count: int
) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [POSSIM, "--log-level", "WARNING", "fleet", "--count", str(count), "--key-file",
         str(key_file), "--state-dir", str(state), "--tcp", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    urls = []
    for line in proc.stdout:
        if line.split() == ["READY", "ALL"]:
            break
        urls.append(line.split()[2])
    return proc, urls


def test_possim_fleet_killed_mid_push_keeps_every_table_whole(
    tmp_path: Path, master_key_file: Path
) -> None:
    count = 40
    table = PreparedTable(make_table(11, rules=300))
    state = tmp_path / "state"

    def jobs_for(urls: list[str]) -> list[Job]:
        return [
            push_job(url, f"T{n:07d}", derive_terminal_key(MASTER, f"PS{n:08d}"), table)
            for n, url in enumerate(urls, start=1)
        ]

    proc, urls = _possim_fleet(state, master_key_file, count)
    try:
        finished: list[Outcome] = []
        with Engine(concurrency=count) as engine:
            runner = threading.Thread(target=lambda: finished.extend(engine.run(jobs_for(urls))))
            runner.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and engine.stats.frames_received < count * 4:
                time.sleep(0.005)  # wait on progress: a few blocks stored per terminal
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            runner.join(60)
        assert len(finished) == count and any(not o.ok for o in finished)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc, urls = _possim_fleet(state, master_key_file, count)
    try:
        with Engine(concurrency=count) as engine:
            again = list(engine.run(jobs_for(urls)))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert all(o.ok for o in again), [str(o.error) for o in again if not o.ok]
    assert any(o.value.result.resumed_from > 0 or o.value.result.already for o in again)
    for n in range(1, count + 1):
        store = StateStore(state / f"PS{n:08d}")
        try:
            active = store.table("active")
            assert active is not None and active.data == table.table.to_bytes()
            assert store.partial() is None
        finally:
            store.close()
