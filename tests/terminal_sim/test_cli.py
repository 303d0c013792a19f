"""`possim serve`, `sale` and `show` as a lab tester runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from protocols.link import Link
from protocols.session import HostSession
from tests.terminal_sim.conftest import KEY, MID, SERIAL, TID, make_table

POSSIM = str(Path(sys.executable).with_name("possim"))
pytestmark = pytest.mark.timeout(120)


def possim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([POSSIM, *args], capture_output=True, text=True, timeout=60, check=False)


def serve_args(key_file: Path, state_dir: Path, port: str) -> list[str]:
    return [
        *(POSSIM, "serve", "--serial", SERIAL, "--tid", TID, "--mid", MID),
        *("--key-file", str(key_file), "--state-dir", str(state_dir)),
        *("--port", port, "--baud", "115200"),
    ]


@pytest.mark.parametrize("port", ["pty", "tcp://127.0.0.1:0"])
def test_serve_sale_show(tmp_path: Path, master_key_file: Path, port: str) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        serve_args(master_key_file, state, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "READY" and len(first) == 2
        url = first[1]
        assert url.startswith("/dev/pts/" if port == "pty" else "socket://127.0.0.1:")
        declined = possim("sale", "--port", url, "--tid", TID, "--amount", "100.00")
        assert declined.returncode == 1
        assert declined.stdout.strip() == "declined 57: no fee rule matches this sale"
        with Link(url, 115200) as link:
            HostSession(link, TID, KEY).push(make_table(3))
        sold = possim("sale", "--port", url, "--tid", TID, "--amount", "100.00", "--card", "credit")
        assert sold.returncode == 0, sold.stderr
        words = sold.stdout.split()
        assert words[0] == "approved" and len(words[1]) == 6
        assert (
            "fee 0.60" in sold.stdout and "net 99.40" in sold.stdout and "table v3" in sold.stdout
        )
        as_json = possim("sale", "--port", url, "--tid", TID, "--amount", "12.5", "--card",
                         "debit", "--format", "json")  # fmt: skip
        doc = json.loads(as_json.stdout)
        assert (doc["code"], doc["amount"], doc["fee"]) == ("00", 1250, 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stdout is not None and proc.stdout.read() == ""  # one line on stdout, no more
    shown = json.loads(possim("show", "--state-dir", str(state), "--json").stdout)
    assert shown["active"]["version"] == 3
    assert shown["pending"] is None and shown["partial_download"] is None
    assert [s["code"] for s in shown["last_sales"]] == ["00", "00", "57"]
    table = possim("show", "--state-dir", str(state))
    assert table.returncode == 0 and "active" in table.stdout and "last sales" in table.stdout


def test_sigint_stops_cleanly(tmp_path: Path, master_key_file: Path) -> None:
    proc = subprocess.Popen(
        serve_args(master_key_file, tmp_path / "s", "pty"), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith("READY /dev/pts/")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tid", "SHORT"], "tid 'SHORT' must be 8"),
        (["--key-file", "/nonexistent/key"], "/nonexistent/key"),
        (["--port", "tcp://nowhere"], "not tcp://HOST:PORT"),
    ],
)
def test_serve_bad_usage_exits_2(
    tmp_path: Path, master_key_file: Path, args: list[str], words: str
) -> None:
    base = serve_args(master_key_file, tmp_path / "s", "pty")[1:]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[base.index(flag) + 1] = value
    done = possim(*base)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert done.stdout == ""


def test_sale_and_show_errors(tmp_path: Path) -> None:
    assert possim("sale", "--port", "/dev/null", "--tid", TID, "--amount", "1.001").returncode == 2
    assert possim("sale", "--port", "/dev/null", "--tid", TID, "--amount", "1", "--card",
                  "gold").returncode == 2  # fmt: skip
    unreachable = possim("sale", "--port", "socket://127.0.0.1:1", "--tid", TID, "--amount", "1")
    assert unreachable.returncode == 1 and "127.0.0.1:1" in unreachable.stderr
    missing = possim("show", "--state-dir", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no terminal state here" in missing.stderr
