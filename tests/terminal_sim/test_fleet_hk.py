"""`possim fleet` (one loop thread + handler pool) serving the terminals of the wire
additions: a host leaving releases a terminal's state file without shutting it down (a
kill afterwards is a power loss), `possim tamper` on a running fleet, and key rotations by
the engine with the fleet SIGKILLed in the middle — every terminal on exactly the keys its
state holds, never none, and at the end only the new key works."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols import messages as m
from protocols.codec import encode
from protocols.engine import Engine, Job, Outcome, health_job, push_job, rotate_job
from protocols.errors import TamperedError
from protocols.flows import Conversation, Flow, PreparedTable, RotationStep
from protocols.health import RebootReason
from protocols.keys import KeyVersions, TerminalKeyRing
from protocols.link import Link
from protocols.mac import MasterKey, TerminalKey
from protocols.session import HostSession
from terminal_sim.state import StateStore
from terminal_sim.terminal import Terminal
from tests.terminal_sim.conftest import MASTER, TID, config, fleet_serving, make_table

pytestmark = pytest.mark.timeout(240)
POSSIM = str(Path(sys.executable).with_name("possim"))
M1 = MasterKey(1, MASTER)
M2 = MasterKey(2, bytes(range(100, 116)))


class PossimFleet:
    """``possim fleet --count N`` on its state directory; ``urls[n - 1]`` is PSn's."""

    def __init__(self, state: Path, key_file: Path, count: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [POSSIM, "--log-level", "WARNING", "fleet", "--count", str(count), "--key-file",
             str(key_file), "--state-dir", str(state), "--tcp", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.urls: list[str] = []
        for line in self.proc.stdout:
            if line.split() == ["READY", "ALL"]:
                break
            self.urls.append(line.split()[2])
        assert len(self.urls) == count

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0


@contextlib.contextmanager
def possim_fleet(state: Path, key_file: Path, count: int, *extra: str) -> Iterator[PossimFleet]:
    fleet = PossimFleet(state, key_file, count, *extra)
    try:
        yield fleet
    finally:
        if fleet.proc.poll() is None:
            fleet.stop()


def serial(n: int) -> str:
    return f"PS{n:08d}"


def tid(n: int) -> str:
    return f"T{n:07d}"


def test_a_host_leaving_releases_the_state_file_but_does_not_shut_down(tmp_path: Path) -> None:
    terminal = Terminal(config(), tmp_path / "t")
    with fleet_serving([terminal]) as server:
        with Link(server.slots[0].url, 115200) as link:
            assert HostSession(link, TID, keys=[M1.terminal_key(config().serial)]).health()
        deadline = time.monotonic() + 30
        while terminal.store._conn is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # released in a handler thread once the host has gone
        assert terminal.store._conn is None
        store = StateStore(tmp_path / "t")
        assert store.running()  # released, still running: a kill now is a power loss
        store.close()
    store = StateStore(tmp_path / "t")
    assert not store.running()  # closing the server shuts every terminal down
    store.close()


def test_reboot_reasons_of_a_possim_fleet(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "state"

    def last_reboot(fleet: PossimFleet) -> RebootReason:
        with Link(fleet.urls[0], 115200) as link:
            return HostSession(link, tid(1), M1.terminal_key(serial(1))).health().last_reboot

    first = PossimFleet(state, master_key_file, 2)
    assert last_reboot(first) is RebootReason.POWER_ON
    time.sleep(0.3)  # the host is gone: the file is released (a shutdown here was the bug)
    first.kill()
    with possim_fleet(state, master_key_file, 2) as second:
        assert last_reboot(second) is RebootReason.POWER_LOSS
    with possim_fleet(state, master_key_file, 2) as third:
        assert last_reboot(third) is RebootReason.RESTART


def test_possim_tamper_on_a_running_fleet(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "state"
    table = PreparedTable(make_table(3, rules=60))
    keys = [TerminalKeyRing.derived([M1], serial(n)) for n in (1, 2)]
    with possim_fleet(state, master_key_file, 2, "--wear-profile", "new") as fleet:
        with Engine() as engine:
            polls = [health_job(url, tid(n)) for n, url in enumerate(fleet.urls, 1)]
            assert all(o.ok and not o.value.health.tampered for o in engine.run(polls))
        done = subprocess.run(
            [POSSIM, "tamper", "--state-dir", str(state / serial(1))],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with Engine() as engine:
            polled = {
                o.job.tag: o
                for o in engine.run(
                    [health_job(url, tid(n), tag=n) for n, url in enumerate(fleet.urls, 1)]
                )
            }
            pushed = {
                o.job.tag: o
                for o in engine.run(
                    [
                        push_job(url, tid(n), keys[n - 1], table, tag=n)
                        for n, url in enumerate(fleet.urls, 1)
                    ]
                )
            }
        assert polled[1].value.health.tampered and polled[1].value.health.tampered_at
        assert not polled[2].value.health.tampered
        assert isinstance(pushed[1].error, TamperedError) and not pushed[1].retryable
        assert pushed[2].ok, pushed[2].error


def stored_keys(state_dir: Path) -> dict[str, int]:
    """Role → key version, as the terminal's store holds them (the configured v1 key when
    no key change reached it)."""
    conn = sqlite3.connect(f"file:{state_dir / 'terminal.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT role, version FROM mac_keys").fetchall()
    except sqlite3.OperationalError as exc:  # never booted, or killed creating its schema
        assert "no such table" in str(exc) or "unable to open" in str(exc)
        rows = []
    finally:
        conn.close()
    return dict(rows) or {"current": 1}


def probe(tid_: str, key: TerminalKey) -> Flow[str]:
    """A signed block of version 0 under ``key``: 76 (refused, nothing stored) if the
    terminal accepts the key, A0 if not."""
    conv = Conversation(tid_)
    request = m.sign(m.block(conv.next_stan(), tid_, 0, 0, 1, b"probe"), key.key)
    response = yield from conv.exchange_encoded(encode(request), str(request[11]))
    assert response[39] in ("76", "A0"), response
    if response[39] == "76":
        m.verify(response, key.key)
    return str(response[39])


def working(fleet: PossimFleet, count: int) -> dict[int, set[int]]:
    """Terminal number → the key versions it accepts."""
    jobs = [
        Job(fleet.urls[n - 1], lambda n=n, key=key: probe(tid(n), key), (n, key.version))
        for n in range(1, count + 1)
        for key in (M1.terminal_key(serial(n)), M2.terminal_key(serial(n)))
    ]
    accepted: dict[int, set[int]] = {n: set() for n in range(1, count + 1)}
    with Engine(concurrency=32) as engine:
        for outcome in engine.run(jobs):
            assert outcome.ok, outcome.error
            if outcome.value == "76":
                n, version = outcome.job.tag
                accepted[n].add(version)
    return accepted


def test_possim_fleet_killed_mid_rotation_every_terminal_keeps_a_working_key(
    tmp_path: Path, master_key_file: Path
) -> None:
    count = 40
    state = tmp_path / "state"

    def jobs_for(fleet: PossimFleet) -> list[Job]:
        return [
            rotate_job(
                url,
                tid(n),
                TerminalKeyRing.derived([M1, M2], serial(n)),
                M2.terminal_key(serial(n)),
                serial=serial(n),
                tag=n,
            )
            for n, url in enumerate(fleet.urls, start=1)
        ]

    fleet = PossimFleet(state, master_key_file, count, "--wear-profile", "new")
    try:
        jobs = jobs_for(fleet)
        finished: list[Outcome] = []
        with Engine(concurrency=count) as engine:
            runner = threading.Thread(target=lambda: finished.extend(engine.run(jobs)))
            runner.start()
            deadline = time.monotonic() + 60
            # placed by protocol progress: most terminals signed on, about half changed
            steps = lambda: sum(len(job.state.steps) for job in jobs)  # noqa: E731
            while time.monotonic() < deadline and steps() < 1.7 * count:
                time.sleep(0.001)
            fleet.kill()
            runner.join(60)
        assert len(finished) == count and any(not o.ok for o in finished)
        assert all(o.retryable for o in finished if not o.ok)  # link errors, nothing else
    finally:
        fleet.kill()
    held = {n: stored_keys(state / serial(n)) for n in range(1, count + 1)}
    assert any(keys != {"current": 1} for keys in held.values())  # some got that far
    assert all(keys.get("current") in (1, 2) for keys in held.values())
    assert all(keys.get("next") in (None, 2) for keys in held.values())
    with possim_fleet(state, master_key_file, count) as fleet:
        accepted = working(fleet, count)
        for n, keys in held.items():  # exactly the keys the state holds work, never none
            assert accepted[n] == set(keys.values()), (n, keys, accepted[n])
        with Engine(concurrency=count) as engine:
            again = list(engine.run(jobs_for(fleet)))
        assert all(o.ok for o in again), [str(o.error) for o in again if not o.ok]
        for outcome in again:  # each resumed from where its state stood
            keys = held[outcome.job.tag]
            if keys["current"] == 2:
                expected = [RotationStep.SIGNED_ON]
            elif keys.get("next") == 2:
                expected = [RotationStep.SIGNED_ON, RotationStep.CONFIRMED]
            else:
                expected = [RotationStep.SIGNED_ON, RotationStep.CHANGED, RotationStep.CONFIRMED]
            assert outcome.value.steps == expected, (outcome.job.tag, keys)
            assert outcome.value.versions == KeyVersions(2, 0)
        assert working(fleet, count) == {n: {2} for n in range(1, count + 1)}  # old key: A0
    for n in range(1, count + 1):
        assert stored_keys(state / serial(n)) == {"current": 2}
