"""Crash safety of the key change: SIGKILL `possim serve` at random points of key rotations,
placed by protocol progress (not wall time), over a pty and over TCP.

After every kill the restarted terminal holds a current key the host knows (never none),
and exactly the keys its state says it holds work: the current one, plus the next one
while a change awaits confirmation. At the end exactly one key works, the newest, and
every older key is refused with A0.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from protocols import messages as m
from protocols.codec import decode, encode
from protocols.errors import LinkError, ProtocolError
from protocols.link import Link
from protocols.mac import MasterKey, TerminalKey
from protocols.session import HostSession, RotationStep
from tests.terminal_sim.conftest import MASTER, MID, SERIAL, TID, make_table

pytestmark = pytest.mark.slow  # handed out first under xdist (tests/conftest.py)

POSSIM = str(Path(sys.executable).with_name("possim"))
VERSIONS = range(1, 31)
KEYS = {
    v: MasterKey(v, MASTER if v == 1 else bytes([v]) * 16).terminal_key(SERIAL) for v in VERSIONS
}


class Possim:
    """One `possim serve` process, on a fresh pty or a TCP port."""

    def __init__(self, key_file: Path, state_dir: Path, port: str) -> None:
        self.proc = subprocess.Popen(
            [POSSIM, "--log-level", "ERROR", "serve", "--serial", SERIAL, "--tid", TID,
             "--mid", MID, "--key-file", str(key_file), "--state-dir", str(state_dir),
             "--port", port, "--baud", "115200"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["READY"], line
        self.url = line[1]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


class KillPlan:
    """When to SIGKILL the terminal during one rotation.

    Placed by protocol progress, never by wall time alone: right after the host signed on
    (before the change is sent), or right after the change was answered (before the
    confirmation: the terminal dies holding a pending next key); or a random 0-3 ms after
    sign-on / 0-1.5 ms after the change, which lands inside the change or confirmation
    exchange (an exchange takes about a millisecond here) or after it; some die 0-5 ms
    after the start (during sign-on); the rest are left alone.
    """

    def __init__(self, rng: random.Random, possim: Possim) -> None:
        self.possim = possim
        self.timer: threading.Timer | None = None
        self.after: RotationStep | None = None
        self.delay: float | None = None  # None: kill in the progress callback itself
        mode, jitter = rng.random(), rng.random()
        if mode < 0.10:
            self.delay = 0.005 * jitter
            self._arm()
        elif mode < 0.35:
            self.after, self.delay = RotationStep.SIGNED_ON, 0.003 * jitter
        elif mode < 0.50:
            self.after = RotationStep.SIGNED_ON
        elif mode < 0.70:
            self.after, self.delay = RotationStep.CHANGED, 0.0015 * jitter
        elif mode < 0.85:
            self.after = RotationStep.CHANGED

    def _arm(self) -> None:
        if self.delay is None:
            self.possim.kill()
            return
        self.timer = threading.Timer(self.delay, self.possim.kill)
        self.timer.start()

    def on_progress(self, step: RotationStep) -> None:
        if step is self.after and self.timer is None:
            self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def stored_keys(state_dir: Path) -> dict[str, TerminalKey]:
    """Role → key, as a restarted terminal reads them (its configured v1 key when none)."""
    conn = sqlite3.connect(f"file:{state_dir / 'terminal.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT role, version, key FROM mac_keys").fetchall()
    except sqlite3.OperationalError as exc:  # killed while creating its schema on first boot
        assert "no such table" in str(exc)
        rows = []
    finally:
        conn.close()
    keys = {role: TerminalKey(version, bytes(key)) for role, version, key in rows}
    return keys or {"current": KEYS[1]}


def working_versions(link: Link) -> set[int]:
    """The key versions the terminal accepts: a signed block of version 0 (refused 76,
    nothing stored) under each key the host has; A0 means that key does not work."""
    accepted = set()
    stan = m.StanCounter(random.randrange(1, 999_000))
    for version, key in KEYS.items():
        probe = m.sign(m.block(stan.next(), TID, 0, 0, 1, b"probe"), key.key)
        response = decode(link.request(encode(probe)))
        if response[39] != "A0":
            assert response[39] == "76", response
            m.verify(response, key.key)
            accepted.add(version)
    return accepted


@pytest.mark.timeout(300)
@pytest.mark.parametrize("port", ["pty", "tcp://127.0.0.1:0"])
def test_sigkill_at_random_points_of_key_rotations(
    tmp_path: Path, master_key_file: Path, port: str
) -> None:
    rng = random.Random(f"20261201 {port}")
    state_dir = tmp_path / "state"
    target, kills, confirm_only, seen_pending = 2, 0, 0, 0
    for _iteration in range(36):
        if target > max(VERSIONS):
            break
        possim = Possim(master_key_file, state_dir, port)
        link = Link(possim.url, 115200, t2=2.0, t1_margin=0.2)
        plan: KillPlan | None = None
        try:
            # the restarted terminal: a known current key, never none; exactly its keys work
            if (state_dir / "terminal.db").exists():
                held = stored_keys(state_dir)
                current = held["current"]
                assert current == KEYS[current.version], "an unknown current key"
                assert current.version in (target - 1, target)
                expected = {current.version}
                if "next" in held:
                    assert held["next"] == KEYS[target]
                    expected.add(target)
                    seen_pending += 1
                assert working_versions(link) == expected
            session = HostSession(link, TID, keys=KEYS.values())
            plan = KillPlan(rng, possim)
            result = session.rotate_key(KEYS[target], plan.on_progress)
        except (LinkError, ProtocolError):
            kills += 1
        else:
            confirm_only += not result.changed and not result.already
            target += 1
        finally:
            if plan is not None:
                plan.cancel()
            link.close()
            possim.kill()
    print(f"kills {kills}, pending after a kill {seen_pending}, confirm-only resumes "
          f"{confirm_only}, reached version {target - 1}")  # fmt: skip
    assert kills >= 5, "the test must actually kill rotations mid-way"
    assert seen_pending >= 2, "kills must land between a key change and its confirmation"
    # finish without kills: exactly one working key, the newest; the old ones are refused
    possim = Possim(master_key_file, state_dir, port)
    link = Link(possim.url, 115200)
    try:
        session = HostSession(link, TID, keys=KEYS.values())
        session.rotate_key(KEYS[max(VERSIONS)])
        assert working_versions(link) == {max(VERSIONS)}
        assert stored_keys(state_dir) == {"current": KEYS[max(VERSIONS)]}
        session.push(make_table(7))
        assert session.sale(10_000, 2).table_version == 7
    finally:
        link.close()
        possim.kill()
