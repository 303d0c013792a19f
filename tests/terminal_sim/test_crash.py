"""Crash safety: SIGKILL `possim serve` at random instants of downloads, restart, resume.

Over many iterations the active (and pending) table is always byte-for-byte one of the
complete published tables, a restarted terminal reports where the download resumes, and
the final state is right.
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

from protocols.errors import LinkError, ProtocolError
from protocols.link import Link
from protocols.session import HostSession
from tests.terminal_sim.conftest import KEY, MID, SERIAL, TID, make_table

POSSIM = str(Path(sys.executable).with_name("possim"))


class Possim:
    """One `possim serve` process on a fresh pty."""

    def __init__(self, key_file: Path, state_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [POSSIM, "--log-level", "WARNING", "serve", "--serial", SERIAL, "--tid", TID,
             "--mid", MID, "--key-file", str(key_file), "--state-dir", str(state_dir),
             "--model", "PF-200", "--firmware", "1.4.2", "--port", "pty", "--baud", "115200"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["READY"], line
        self.path = line[1]

    def kill(self) -> None:
        # the kill timer and the test's own clean-up may race: killing twice is fine
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


class KillPlan:
    """When to SIGKILL the terminal during one push.

    The kill point is chosen by download progress, not by wall time, so a slow or loaded
    machine moves it by a few milliseconds at most. Three pushes in four die a random
    0-20 ms after the terminal reports a random block beyond where the push started
    (mid-block, mid-write or between blocks); some die at once (during sign-on); the rest
    are left alone and complete.
    """

    def __init__(self, rng: random.Random, possim: Possim) -> None:
        self.possim = possim
        mode = rng.random()
        self.ahead = rng.uniform(0.0, 1.0)
        self.delay = rng.uniform(0.0, 0.02)
        self.by_progress = mode < 0.75
        self.start: int | None = None  # the block the push started from
        self.timer: threading.Timer | None = None
        if 0.75 <= mode < 0.9:
            self._arm()

    def _arm(self) -> None:
        self.timer = threading.Timer(self.delay, self.possim.kill)
        self.timer.start()

    def on_progress(self, stored: int, total: int) -> None:
        if self.start is None:
            self.start = stored
        at = self.start + 1 + int(self.ahead * (total - self.start))
        if self.by_progress and self.timer is None and stored >= at:
            self._arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def stored(state_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Role → (version, bytes) as a restarted terminal would read them."""
    conn = sqlite3.connect(f"file:{state_dir / 'terminal.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT role, version, data FROM fee_tables").fetchall()
    finally:
        conn.close()
    return {role: (version, bytes(data)) for role, version, data in rows}


@pytest.mark.timeout(240)
def test_sigkill_at_random_points_of_downloads(tmp_path: Path, master_key_file: Path) -> None:
    rng = random.Random(20261122)
    state_dir = tmp_path / "state"
    tables = [make_table(v, rules=2000) for v in range(1, 7)]  # ~41 KiB: 47 blocks each
    published = {t.version: t.to_bytes() for t in tables}
    kills = 0
    target = 0
    resumes: list[bool] = []  # per push that got past sign-on: did it resume?
    for _iteration in range(24):
        if target == len(tables):
            break
        possim = Possim(master_key_file, state_dir)
        link = Link(possim.path, 115200, t2=2.0, t1_margin=0.2)
        session = HostSession(link, TID, KEY)
        plan = KillPlan(rng, possim)
        try:
            session.push(tables[target], plan.on_progress)
        except (LinkError, ProtocolError):
            kills += 1
        else:
            target += 1
        finally:
            plan.cancel()
            link.close()
            possim.kill()
        if plan.start is not None:
            resumes.append(plan.start > 0)
        # after every crash: only complete, published tables, byte for byte
        if (state_dir / "terminal.db").exists():
            for role, (version, data) in stored(state_dir).items():
                assert data == published[version], f"{role} table {version} differs"
    print(f"kills {kills}, pushes {len(resumes)}, resumed {sum(resumes)}, completed {target}")
    assert kills >= 3, "the test must actually kill pushes mid-way"
    assert sum(resumes) >= 3, "pushes after a mid-download kill must resume, not restart"
    # finish whatever is left without kills
    possim = Possim(master_key_file, state_dir)
    link = Link(possim.path, 115200)
    session = HostSession(link, TID, KEY)
    try:
        info = session.sign_on().info
        for table in tables:
            if table.version > info.active_version:
                session.push(table)
        info = session.sign_on().info
        assert (info.active_version, info.pending_version) == (6, 0)
        assert not info.partial.in_progress
        assert session.sale(10_000, 2).fee == 60
    finally:
        link.close()
        assert possim.stop() == 0
    final = stored(state_dir)
    assert final["active"] == (6, published[6])
    assert final["previous"] == (5, published[5])
