"""What `possim` loads before it works: ``--help`` and a command's ``--help`` load no codec,
link, MAC, state or terminal module; a command loads what it uses. (Timings are
`make bench`'s, never a test's: these check *which* modules load, which is what the time
follows from.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("construct", "cryptography", "serial", "sqlalchemy", "sqlmodel")
"""Libraries ``possim`` may import only in the commands that need them."""

HELP_LOADS = {
    "protocols", "protocols.errors", "protocols.framing", "protocols.pty", "protocols.values",
    "terminal_sim", "terminal_sim.cli", "terminal_sim.line", "terminal_sim.wear_profile",
    "terminal_sim.defaults",
}  # fmt: skip
"""What ``possim --help`` may load of ours: the CLI, the line emulator's command (its
framing and pty helpers are the standard library's), the light value types the options
name; no codec, message, session, link, MAC, state, terminal or wear module."""

PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["possim", *args]
import terminal_sim.cli
try:
    terminal_sim.cli.main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = [m for m in sys.modules if m.split(".")[0] in watched]
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def probe(*args: str) -> tuple[int, set[str], str]:
    """Run ``possim ARGS`` in a fresh interpreter: exit code, heavy and our modules it
    loaded, and its stdout."""
    watched = [*HEAVY, "protocols", "terminal_sim"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(watched)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
    assert line, done.stderr
    found = json.loads(line[-1].removeprefix("PROBE "))
    return found["code"], set(found["loaded"]), done.stdout


def heavy(loaded: set[str]) -> set[str]:
    return {m.split(".")[0] for m in loaded} & set(HEAVY)


def ours(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m.split(".")[0] in ("protocols", "terminal_sim")}


def test_help_loads_nothing_heavy() -> None:
    code, loaded, stdout = probe("--help")
    assert code == 0
    for name in ("serve", "fleet", "show", "sale", "tamper", "line", "cable"):
        assert f" {name} " in stdout
    assert heavy(loaded) == set()
    assert ours(loaded) == HELP_LOADS


@pytest.mark.parametrize("command", ["serve", "fleet", "show", "sale", "tamper", "line", "cable"])
def test_a_commands_help_loads_nothing_heavy(command: str) -> None:
    code, loaded, stdout = probe(command, "--help")
    assert code == 0 and "Usage" in stdout
    assert heavy(loaded) == set()
    assert ours(loaded) == HELP_LOADS


def test_the_wear_profile_option_lists_the_profiles() -> None:
    code, _, stdout = probe("fleet", "--help")
    assert code == 0 and "new" in stdout and "mixed" in stdout and "worn" in stdout
    from terminal_sim import wear, wear_profile  # noqa: PLC0415

    assert wear.WearProfile is wear_profile.WearProfile  # one enum, re-exported


def test_a_command_loads_what_it_uses(tmp_path: Path) -> None:
    code, loaded, _ = probe("show", "--state-dir", str(tmp_path / "nothing"))
    assert code == 1  # no terminal state there
    assert "terminal_sim.state" in loaded and "terminal_sim.report" in loaded
    code, loaded, _ = probe(
        "sale", "--port", "/dev/null", "--tid", "T0000001", "--amount", "1.00", "--card", "gold"
    )
    assert code == 2  # an unknown card: refused before any link is opened
    assert {"protocols.messages", "protocols.session", "protocols.link"} <= loaded
    assert "construct" in heavy(loaded)


def test_the_line_command_loads_pyserial_only_for_a_url() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, terminal_sim.line; print(json.dumps(list(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert heavy(set(json.loads(done.stdout))) == set()
