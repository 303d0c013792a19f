"""Many terminals in one process over TCP: the in-process server and `possim fleet`."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocols.link import Link
from protocols.mac import derive_terminal_key
from protocols.session import HostSession
from protocols.values import CardType
from terminal_sim.serve import FleetServer
from terminal_sim.terminal import Terminal
from tests.terminal_sim.conftest import MASTER, config, fleet_serving, make_table

POSSIM = str(Path(sys.executable).with_name("possim"))
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    terminals = [Terminal(config(f"PF{n:08d}"), tmp_path / f"t{n}") for n in range(20)]
    with fleet_serving(terminals) as server:
        yield server


def _session(url: str, serial: str) -> HostSession:
    return HostSession(Link(url, 115200), "TERM0042", derive_terminal_key(MASTER, serial))


def test_every_terminal_answers(fleet: FleetServer) -> None:
    assert len({slot.url for slot in fleet.slots}) == 20
    for slot in fleet.slots:
        session = _session(slot.url, slot.terminal.config.serial)
        try:
            assert session.sign_on().info.serial == slot.terminal.config.serial
        finally:
            session.link.close()


def test_concurrent_pushes_converge(fleet: FleetServer) -> None:
    table = make_table(4, rules=200)

    def push(slot: object) -> int:
        serial = slot.terminal.config.serial  # type: ignore[attr-defined]
        session = _session(slot.url, serial)  # type: ignore[attr-defined]
        try:
            session.push(table)
            return session.sale(10_000, CardType.CREDIT).fee or -1
        finally:
            session.link.close()

    with ThreadPoolExecutor(8) as pool:
        fees = list(pool.map(push, fleet.slots))
    assert fees == [60] * 20
    for slot in fleet.slots:
        stored = slot.terminal.store.table("active")
        assert stored is not None and stored.data == table.to_bytes()


def test_one_host_at_a_time_per_terminal(fleet: FleetServer) -> None:
    slot = fleet.slots[0]
    first = _session(slot.url, slot.terminal.config.serial)
    first.echo()
    second_done = threading.Event()

    def second() -> None:
        session = _session(slot.url, slot.terminal.config.serial)
        session.link.t2 = 20.0
        try:
            session.echo()
            second_done.set()
        finally:
            session.link.close()

    thread = threading.Thread(target=second)
    thread.start()
    assert not second_done.wait(1.0)  # waits: the line is taken
    first.link.close()
    thread.join(30)
    assert second_done.is_set()


def test_possim_fleet_from_a_manifest(tmp_path: Path, master_key_file: Path) -> None:
    manifest = tmp_path / "terminals.csv"
    manifest.write_text(
        "serial,model,firmware,tid,mid,mcc,capabilities\n"
        'PF00000001,PF-200,1.4.2,TERM0001,MERCHANT0000001,5411,"chip,contactless"\n'
        "PF00000002,PF-300,2.0.0,TERM0002,MERCHANT0000002,5812,\n"
    )
    proc = subprocess.Popen(
        [POSSIM, "fleet", "--manifest", str(manifest), "--key-file", str(master_key_file),
         "--state-dir", str(tmp_path / "state"), "--tcp", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().split() for _ in range(3)]
        assert lines[2] == ["READY", "ALL"]
        serials = [w[1] for w in lines[:2]]
        assert serials == ["PF00000001", "PF00000002"]
        session = HostSession(
            Link(lines[1][2], 115200), "TERM0002", derive_terminal_key(MASTER, "PF00000002")
        )
        info = session.sign_on().info
        session.link.close()
        assert (info.model, info.firmware, info.mcc) == ("PF-300", "2.0.0", 5812)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_bad_manifest_names_every_bad_row(tmp_path: Path, master_key_file: Path) -> None:
    manifest = tmp_path / "terminals.csv"
    manifest.write_text(
        "serial,model,firmware,tid,mid,mcc\n"
        "PF1,PF-200,1.0,TERM0001,MERCHANT0000001,5411\n"
        "PF2,PF-200,1.0,TOO-LONG-TID,MERCHANT0000002,5411\n"
        "PF1,PF-200,1.0,TERM0003,MERCHANT0000003,5411\n"
        "PF4,PF-200,1.0,TERM0004,MERCHANT0000004,shop\n"
    )
    done = subprocess.run(
        [POSSIM, "fleet", "--manifest", str(manifest), "--key-file", str(master_key_file),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"{manifest}:3: tid 'TOO-LONG-TID'" in done.stderr
    assert f"{manifest}:4: serial: 'PF1' repeats line 2" in done.stderr
    assert f"{manifest}:5: mcc: 'shop' is not a number" in done.stderr
    assert not (tmp_path / "state").exists()


def test_stopping_with_hundreds_of_connections_open_does_not_hang(tmp_path: Path) -> None:
    """Regression: each ending connection wakes the selector; with hundreds ending after the
    loop stopped, blocking wake-ups filled the socket buffer and hung their threads."""
    terminals = [Terminal(config(f"PF{n:08d}"), tmp_path / f"t{n}") for n in range(400)]
    server = FleetServer(terminals, "127.0.0.1", 0, 115200)
    stop = threading.Event()
    runner = threading.Thread(target=server.run, args=(stop,))
    runner.start()
    links = [Link(slot.url, 115200) for slot in server.slots]
    try:
        for link, slot in zip(links, server.slots, strict=True):
            HostSession(
                link, "TERM0042", derive_terminal_key(MASTER, slot.terminal.config.serial)
            ).echo()
        stop.set()
    finally:
        for link in links:
            link.close()
    runner.join(60)
    alive = runner.is_alive()
    serials = {slot.terminal.config.serial for slot in server.slots}
    hung = [t.name for t in threading.enumerate() if t.name in serials]
    server.close()
    assert not alive, "FleetServer.run did not return after stop"
    assert hung == [], f"{len(hung)} serving threads never ended"
