"""Crash safety: SIGKILL `possim serve` at random instants of downloads, restart, resume.

Over many iterations the active (and pending) table is always byte-for-byte one of the
complete published tables, a restarted terminal reports where the download resumes, and
the final state is right.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
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
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


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
    # how long one push takes here, so that kills land inside pushes
    scratch = Possim(master_key_file, tmp_path / "scratch")
    with Link(scratch.path, 115200) as link:
        started = time.monotonic()
        HostSession(link, TID, KEY).push(tables[0])
        duration = time.monotonic() - started
    scratch.stop()
    kills = resumed = 0
    target = 0
    for _iteration in range(24):
        if target == len(tables):
            break
        possim = Possim(master_key_file, state_dir)
        link = Link(possim.path, 115200, t2=2.0, t1_margin=0.2)
        session = HostSession(link, TID, KEY)
        timer = threading.Timer(rng.uniform(0.0, 1.2 * duration), possim.kill)
        timer.start()
        try:
            result = session.push(tables[target])
        except (LinkError, ProtocolError):
            kills += 1
        else:
            resumed += result.resumed_from > 0
            target += 1
        finally:
            timer.cancel()
            link.close()
            possim.kill()
        # after every crash: only complete, published tables, byte for byte
        if (state_dir / "terminal.db").exists():
            for role, (version, data) in stored(state_dir).items():
                assert data == published[version], f"{role} table {version} differs"
    print(f"kills {kills}, pushes that resumed {resumed}")
    assert kills >= 3, "the test must actually kill pushes mid-way"
    # finish whatever is left without kills
    possim = Possim(master_key_file, state_dir)
    link = Link(possim.path, 115200)
    session = HostSession(link, TID, KEY)
    try:
        info = session.sign_on().info
        for table in tables:
            if table.version > info.active_version:
                result = session.push(table)
                resumed += result.resumed_from > 0
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
    assert resumed >= 1, "at least one push must have resumed a partial download"
