"""Health poll and key change round trips against a `possim serve` terminal on a pty.

The additions to v1 at the protocol level, beside the exchanges they compare with, in one
run against the same terminal process:

* echo (0800/301): the lightest exchange there is, the reference;
* health poll (0800/303): unsigned, reads the terminal's wear row;
* sign-on (0800/001): identity, versions, health and key versions;
* key change + confirmation (0800/161 then 162): two signed exchanges, each one SQLite
  transaction on the terminal (an unwrap, a KCV, two stored rows); and a whole
  ``rotate_key`` (sign-on + change + confirmation), what a fleet rotation does per terminal.

Medians over many round trips; ratios to the echo. The fleet-level figures (a health poll
and a rotation of 1,000 `possim fleet` terminals over TCP) come with the fleet's commands.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from protocols.link import Link
from protocols.mac import MasterKey, write_master_key_file
from protocols.session import HostSession

POSSIM = str(Path(sys.executable).with_name("possim"))
SERIAL, TID, MID = "PF00000001", "TERM0001", "MERCHANT0000001"
ROUNDS = 400
ROTATIONS = 150


def _median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure() -> dict[str, float]:
    masters = [MasterKey(v, v.to_bytes(16, "big")) for v in range(1, 2 * ROTATIONS + 3)]
    keys = [master.terminal_key(SERIAL) for master in masters]
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "master.key"
        write_master_key_file(key_file, masters[0])
        proc = subprocess.Popen(
            [POSSIM, "--log-level", "WARNING", "serve", "--serial", SERIAL, "--tid", TID,
             "--mid", MID, "--model", "VX-680", "--key-file", str(key_file),
             "--state-dir", f"{tmp}/state", "--port", "pty", "--baud", "115200",
             "--wear-profile", "mixed"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            words = proc.stdout.readline().split()
            if words[:1] != ["READY"]:
                raise RuntimeError(f"possim serve did not start: {words}")
            with Link(words[1], 115200) as link:
                host = HostSession(link, TID, keys=keys)
                host.sign_on()
                out = {
                    "echo": _median_ms(host.echo, ROUNDS),
                    "health": _median_ms(host.health, ROUNDS),
                    "sign-on": _median_ms(host.sign_on, ROUNDS),
                }
                turn = iter(keys[1 : ROTATIONS + 1])

                def change_and_confirm() -> None:
                    new = next(turn)
                    host.change_key(new)
                    host.confirm_key(new)

                out["change+confirm"] = _median_ms(change_and_confirm, ROTATIONS)
                rest = iter(keys[ROTATIONS + 1 :])
                out["rotate_key"] = _median_ms(lambda: host.rotate_key(next(rest)), ROTATIONS)
                out["bytes"] = link.stats.bytes_sent + link.stats.bytes_received
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return out


def run() -> list[str]:
    r = measure()
    echo = r["echo"]
    lines = [
        "## Health poll and key change over a pty (`possim serve`, medians; ratio to echo)",
    ]
    for name in ("echo", "health", "sign-on", "change+confirm", "rotate_key"):
        rounds = ROUNDS if name in ("echo", "health", "sign-on") else ROTATIONS
        lines.append(
            f"  {name:<15} {r[name]:6.2f} ms  ({r[name] / echo:4.1f}× echo, {rounds} rounds)"
        )
    lines.append(
        f"  a health poll costs {r['health'] / r['sign-on']:.2f}× a sign-on; a rotation "
        f"(sign-on + change + confirmation) {r['rotate_key']:.1f} ms of round trips"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
