"""`possim tamper`, `possim show` (keys and health), `possim fleet --wear-profile` and key
rotation of a `possim fleet` over TCP, as a lab tester runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocols.errors import RefusedError
from protocols.keys import KeyVersions
from protocols.link import Link
from protocols.mac import MasterKey, write_master_key_file
from protocols.session import HostSession
from protocols.values import Capability
from terminal_sim.wear import PROFILES, WearProfile, initial_wear
from tests.terminal_sim.conftest import KEY, MASTER, MID, SERIAL, TID, make_table

POSSIM = str(Path(sys.executable).with_name("possim"))
pytestmark = pytest.mark.timeout(180)
M2 = MasterKey(2, bytes(range(100, 116)))


def possim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POSSIM, *args], capture_output=True, text=True, timeout=60, check=False)


@contextmanager
def running(*args: str) -> Iterator[list[list[str]]]:
    """A possim process; yields its READY lines (split) up to the first (or READY ALL)."""
    proc = subprocess.Popen(
        [POSSIM, "--log-level", "WARNING", *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []
    try:
        while True:
            words = proc.stdout.readline().split()
            assert words[:1] == ["READY"], words
            lines.append(words)
            if args[0] == "serve" or words == ["READY", "ALL"]:
                break
        yield lines
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def serve_args(key_file: Path, state_dir: Path, port: str = "pty") -> list[str]:
    return [
        *("serve", "--serial", SERIAL, "--tid", TID, "--mid", MID, "--model", "VX-680"),
        *("--key-file", str(key_file), "--state-dir", str(state_dir)),
        *("--port", port, "--baud", "115200"),
    ]


def test_tamper_a_running_terminal(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "state"
    with running(*serve_args(master_key_file, state)) as ((_, url),), Link(url, 115200) as link:
        host = HostSession(link, TID, KEY)
        host.push(make_table(3))
        first = host.sign_on().health
        assert first is not None and not first.tampered and first.battery is not None
        done = possim("tamper", "--state-dir", str(state))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("tamper switch tripped at ")
        assert "refused with 66" in done.stdout
        health = host.sign_on().health  # the running process sees it on its next request
        assert health is not None and health.tampered and health.tampered_at is not None
        with pytest.raises(RefusedError) as info:
            host.push(make_table(4))
        assert info.value.code == "66"
        assert host.sale(10_000, 2).approved
        again = possim("tamper", "--state-dir", str(state), "--json")
        doc = json.loads(again.stdout)
        assert doc == {"tampered_at": health.tampered_at.isoformat(), "already": True}
    shown = json.loads(possim("show", "--state-dir", str(state), "--json").stdout)
    assert shown["health"]["tampered"] is True
    assert shown["health"]["card_reads"] == {"chip": 1, "contactless": 0, "magstripe": 0}
    assert shown["health"]["running"] is False  # stopped cleanly
    text = possim("show", "--state-dir", str(state)).stdout
    assert "TAMPERED" in text and "battery" in text


def test_show_gives_key_versions_never_keys(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "state"
    k2 = M2.terminal_key(SERIAL)
    with running(*serve_args(master_key_file, state)) as ((_, url),), Link(url, 115200) as link:
        host = HostSession(link, TID, KEY)
        host.change_key(k2)
        mid = json.loads(possim("show", "--state-dir", str(state), "--json").stdout)["keys"]
        assert (mid["version"], mid["next_version"]) == (1, 2)
        assert mid["next_check_value"] == k2.check_value
        host.confirm_key(k2)
    shown = possim("show", "--state-dir", str(state), "--json")
    keys = json.loads(shown.stdout)["keys"]
    assert keys == {
        "version": 2,
        "check_value": k2.check_value,
        "source": "key change",
        "next_version": None,
        "next_check_value": None,
    }
    text = possim("show", "--state-dir", str(state)).stdout
    assert f"MAC key: version 2 (check value {k2.check_value}, from key change)" in text
    for out in (shown.stdout, text):
        for secret in (KEY, k2.key, MASTER, M2.key):
            assert secret.hex() not in out.lower()
    # restarted with the v1 key file, the terminal keeps the key it was given
    with running(*serve_args(master_key_file, state)) as ((_, url),), Link(url, 115200) as link:
        assert HostSession(link, TID, keys=[k2]).sign_on().keys == KeyVersions(2, 0)
        health = HostSession(link, TID, k2).health()
        assert health.last_reboot.name == "RESTART"


def test_reboot_reasons(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [POSSIM, "--log-level", "WARNING", *serve_args(master_key_file, state)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[1]
    with Link(url, 115200) as link:
        assert HostSession(link, TID, KEY).health().last_reboot.name == "POWER_ON"
    proc.send_signal(signal.SIGKILL)  # power cut
    proc.wait(10)
    with running(*serve_args(master_key_file, state)) as ((_, url),), Link(url, 115200) as link:
        assert HostSession(link, TID, KEY).health().last_reboot.name == "POWER_LOSS"


def test_rotate_a_possim_fleet_over_tcp(tmp_path: Path, master_key_file: Path) -> None:
    state = tmp_path / "fleet"
    args = ("fleet", "--key-file", str(master_key_file), "--state-dir", str(state), "--count", "3")
    with running(*args) as lines:
        terminals = [(w[1], w[2]) for w in lines if len(w) == 3]
        assert len(terminals) == 3
        for serial, url in terminals:
            tid = f"T{int(serial[2:]):07d}"
            old = MasterKey(1, MASTER).terminal_key(serial)
            new = M2.terminal_key(serial)
            with Link(url, 115200) as link:
                host = HostSession(link, tid, keys=[old, new])
                host.push(make_table(3))
                assert host.rotate_key(new).version == 2
                assert host.sign_on().keys == KeyVersions(2, 0)
                with pytest.raises(RefusedError) as info:
                    HostSession(link, tid, old.key).push(make_table(4))
                assert info.value.code == "A0"
                host.push(make_table(4))
                assert host.sale(10_000, 2).table_version == 4


def test_a_fleet_started_with_a_v2_key_file_reports_version_2(tmp_path: Path) -> None:
    key_file = tmp_path / "m2.key"
    write_master_key_file(key_file, M2)
    args = (
        "fleet",
        "--key-file",
        str(key_file),
        "--state-dir",
        str(tmp_path / "s"),
        "--count",
        "1",
    )
    with running(*args) as lines:
        _, serial, url = lines[0]
        with Link(url, 115200) as link:
            host = HostSession(link, "T0000001", keys=[M2.terminal_key(serial)])
            assert host.sign_on().keys == KeyVersions(2, 0)
            host.push(make_table(1))


def test_fleet_wear_profile_gives_the_seeded_spread(tmp_path: Path, master_key_file: Path) -> None:
    count, seed = 40, 5
    args = (
        *("fleet", "--key-file", str(master_key_file), "--state-dir", str(tmp_path / "s")),
        *("--count", str(count), "--model", "VX-680", "--wear-profile", "worn"),
        *("--wear-seed", str(seed)),
    )
    caps = Capability.CHIP | Capability.CONTACTLESS | Capability.MAGSTRIPE
    now = datetime.now(UTC)
    tampered, worn = [], 0
    with running(*args) as lines:
        for _, serial, url in (w for w in lines if len(w) == 3):
            expected = initial_wear(WearProfile.WORN, seed, serial, PROFILES["VX-680"], caps, now)
            tid = f"T{int(serial[2:]):07d}"
            with Link(url, 115200) as link:
                host = HostSession(link, tid, MasterKey(1, MASTER).terminal_key(serial))
                health = host.health()
                reads = health.card_reads
                assert (reads.chip, reads.contactless, reads.magstripe) == (
                    expected.wear.chip,
                    expected.wear.contactless,
                    expected.wear.magstripe,
                )
                assert health.battery is not None
                assert health.battery.cycles == expected.wear.battery_cycles
                assert health.tampered == (expected.tampered_at is not None)
                worn += health.battery.cycles > PROFILES["VX-680"].battery_rated_cycles
                if health.tampered:
                    tampered.append(serial)
                    with pytest.raises(RefusedError) as info:
                        host.push(make_table(1))
                    assert info.value.code == "66"
    assert worn > count // 2  # a worn fleet: most batteries past their rated cycles
    assert 0 < len(tampered) < count // 4  # a few tampered


def test_tamper_and_wear_bad_usage(tmp_path: Path, master_key_file: Path) -> None:
    bad = possim("fleet", "--key-file", str(master_key_file), "--state-dir", str(tmp_path),
                 "--count", "1", "--wear-profile", "ancient")  # fmt: skip
    assert bad.returncode == 2 and "ancient" in bad.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    done = possim("tamper", "--state-dir", str(blocked / "state"))
    assert done.returncode == 1 and str(blocked) in done.stderr
