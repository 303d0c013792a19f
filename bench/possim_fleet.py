"""`possim fleet`: 1,000 emulated terminals in one process, each answering an echo.

Starts ``possim fleet --count 1000 --tcp 127.0.0.1:0`` and, once it prints ``READY ALL``,
connects to every terminal in turn (``socket://``, as the fleet tool does) and times one
0800/301 echo, connection included. Target (issue 3): every terminal answers within 1 s
while all are idle. Also reported: start-up time and the fleet process's memory.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocols.link import Link
from protocols.mac import derive_terminal_key, generate_master_key_file, load_master_key
from protocols.session import HostSession

COUNT = 1000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(count: int = COUNT) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "master.key"
        generate_master_key_file(key_file)
        master = load_master_key(key_file)
        possim = str(Path(sys.executable).with_name("possim"))
        start = time.perf_counter()
        proc = subprocess.Popen(
            [possim, "--log-level", "WARNING", "fleet", "--count", str(count), "--tcp",
             "127.0.0.1:0", "--key-file", str(key_file), "--state-dir", f"{tmp}/state"],
            stdout=subprocess.PIPE, stderr=(Path(tmp) / "fleet.log").open("w"), text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            urls: dict[str, str] = {}
            for line in proc.stdout:
                words = line.split()
                if words == ["READY", "ALL"]:
                    break
                urls[words[1]] = words[2]
            ready = time.perf_counter() - start
            rss_idle = _rss_mib(proc.pid)
            latencies = []
            for number, (serial, url) in enumerate(urls.items(), start=1):
                tid = f"T{number:07d}"
                t0 = time.perf_counter()
                with Link(url, 115200) as link:
                    HostSession(link, tid, derive_terminal_key(master, serial)).echo()
                latencies.append(time.perf_counter() - t0)
            rss_after = _rss_mib(proc.pid)
            # all connected at once (a serving thread each), then every one echoed in turn
            sessions = []
            for number, (serial, url) in enumerate(urls.items(), start=1):
                key = derive_terminal_key(master, serial)
                sessions.append(HostSession(Link(url, 115200), f"T{number:07d}", key))
            time.sleep(1.0)
            cpu_before = _cpu_seconds(proc.pid)
            time.sleep(2.0)
            idle_cpu = (_cpu_seconds(proc.pid) - cpu_before) / 2.0
            connected = []
            for session in sessions:
                t0 = time.perf_counter()
                session.echo()
                connected.append(time.perf_counter() - t0)
            rss_connected = _rss_mib(proc.pid)
            for session in sessions:
                session.link.close()
        except Exception as exc:
            log = (Path(tmp) / "fleet.log").read_text()[-2000:]
            raise RuntimeError(f"{exc!r}; fleet log tail: {log}") from exc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
    latencies.sort()
    connected.sort()
    worst = max(latencies[-1], connected[-1])
    verdict = "meets" if worst <= 1.0 and len(latencies) == len(connected) == count else "MISSES"
    return [
        f"## possim fleet: {count} terminals in one process (pid {proc.pid}), TCP",
        f"  ready (READY ALL) after      {ready:8.2f} s",
        f"  memory idle / after echoes   {rss_idle:8.1f} / {rss_after:.1f} MiB",
        f"  echo, connect included: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(0.99 * (len(latencies) - 1))] * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms over {len(latencies)} terminals",
        f"  all {count} connected at once: CPU of the idle fleet {100 * idle_cpu:.0f} % of a core, "
        f"memory {rss_connected:.1f} MiB",
        f"  echo, all connected: median {statistics.median(connected) * 1000:.1f} ms, "
        f"max {connected[-1] * 1000:.1f} ms",
        f"  every terminal answered within 1 s: {verdict} the target; exit code {code}",
    ]


if __name__ == "__main__":
    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else COUNT)))
    os._exit(0)
