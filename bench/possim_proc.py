"""A `possim fleet` process for the benchmarks: start it, read its URLs, watch its CPU and
memory through /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from protocols.mac import MasterKey, generate_master_key_file, read_master_key

__all__ = ["Fleet", "cpu_seconds", "memory_mib"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int, what: str = "VmRSS") -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of process ``pid``, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(what + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Fleet:
    """``possim fleet --count N`` in ``tmp`` (``extra``: more options, e.g. ``--drop``).

    ``terminals`` lists (serial, tid, key, url); ``ready_s`` is the time to ``READY ALL``;
    ``master`` is the fleet's master key (version 1), for a key rotation.
    """

    def __init__(self, tmp: Path, count: int, extra: list[str] | None = None) -> None:
        key_file = tmp / "master.key"
        generate_master_key_file(key_file, overwrite=True)
        self.master: MasterKey = read_master_key(key_file)
        possim = str(Path(sys.executable).with_name("possim"))
        self.log = tmp / "fleet.log"
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [possim, "--log-level", "WARNING", "fleet", "--count", str(count), "--tcp",
             "127.0.0.1:0", "--key-file", str(key_file), "--state-dir", str(tmp / "state"),
             *(extra or [])],
            stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.terminals: list[tuple[str, str, bytes, str]] = []
        for number, line in enumerate(self.proc.stdout, start=1):
            words = line.split()
            if words == ["READY", "ALL"]:
                break
            serial, url = words[1], words[2]
            tid = f"T{number:07d}"  # what `possim fleet --count` gives terminal n
            self.terminals.append((serial, tid, self.master.terminal_key(serial).key, url))
        self.ready_s = time.perf_counter() - start
        if len(self.terminals) != count:
            self.stop()
            raise RuntimeError(f"possim fleet served {len(self.terminals)} of {count}: "
                               f"{self.log.read_text()[-1000:]}")  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
