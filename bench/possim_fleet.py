"""`possim fleet`: 10,000 emulated terminals in one process (one selector thread).

Starts ``possim fleet --count 10000 --tcp 127.0.0.1:0 --wear-profile mixed`` and reports:
the time to ``READY ALL``; memory (RSS) idle, after every terminal answered, and its
peak; the 0800/301 echo of every terminal, connection included, timed by the host engine
(:mod:`protocols.engine`) two ways: one terminal at a time (the terminal's own latency)
and 256 at once (the loop under load); then the 0800/303 health poll of every terminal,
256 at once (:func:`protocols.engine.health_job`): each terminal boots on it (its state
file created, its first-boot wear computed from the profile), so memory is measured with
every terminal's hardware emulated. Targets: memory ≤ 500 MiB and every terminal
answers within 1 s (issue 18); health polls ≥ 200 terminals/s (issue 16's figure is with
the fleet's database; this is the protocol alone).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.possim_proc import Fleet, memory_mib
from protocols.engine import Engine, Job, health_job
from protocols.flows import Conversation

COUNT = 10_000
MEMORY_MIB = 500.0
HEALTH_RATE = 200.0
WEAR = ["--wear-profile", "mixed", "--wear-seed", "16"]


def _echoes(fleet: Fleet, concurrency: int) -> tuple[list[float], int, float]:
    """Echo every terminal; (sorted latencies, failures, wall seconds)."""
    jobs = [
        Job(url, lambda tid=tid, key=key: Conversation(tid, key).echo())
        for _, tid, key, url in fleet.terminals
    ]
    start = time.perf_counter()
    with Engine(concurrency=concurrency) as engine:
        outcomes = list(engine.run(jobs))
    wall = time.perf_counter() - start
    failed = sum(1 for o in outcomes if not o.ok)
    return sorted(o.seconds for o in outcomes if o.ok), failed, wall


def _health(fleet: Fleet, concurrency: int) -> tuple[int, int, int, float]:
    """Poll every terminal's health; (polled, failed, tampered, wall seconds)."""
    jobs = [health_job(url, tid) for _, tid, _, url in fleet.terminals]
    start = time.perf_counter()
    with Engine(concurrency=concurrency) as engine:
        outcomes = list(engine.run(jobs))
    wall = time.perf_counter() - start
    polled = [o.value.health for o in outcomes if o.ok]
    return len(polled), len(outcomes) - len(polled), sum(h.tampered for h in polled), wall


def _p(values: list[float], q: float) -> float:
    return values[int(q * (len(values) - 1))] * 1000


def run(count: int = COUNT) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, Fleet(Path(tmp), count, WEAR) as fleet:
        idle = memory_mib(fleet.pid)
        one, failed_one, wall_one = _echoes(fleet, 1)
        many, failed_many, wall_many = _echoes(fleet, 256)
        after = memory_mib(fleet.pid)
        first = _health(fleet, 256)
        booted = memory_mib(fleet.pid)
        polled, failed_health, tampered, wall_health = _health(fleet, 256)
        peak = memory_mib(fleet.pid, "VmHWM")
        threads = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{fleet.pid}/status").read_text().splitlines()
                if line.startswith("Threads:")
            )
        )
    worst = max(one[-1], many[-1])
    health_rate = polled / wall_health
    ok = not failed_one and not failed_many and worst <= 1.0 and peak <= MEMORY_MIB
    ok = ok and not failed_health and not first[1] and health_rate >= HEALTH_RATE
    return [
        f"## possim fleet: {count:,} terminals in one process, TCP, {threads} threads",
        f"  ready (READY ALL) after        {fleet.ready_s:8.2f} s",
        f"  memory idle / after echoes / after health polls / peak  {idle:.1f} / {after:.1f} / "
        f"{booted:.1f} / {peak:.1f} MiB (target ≤ {MEMORY_MIB:.0f} MiB: {peak / MEMORY_MIB:.2f}x)",
        f"  echo one at a time, connect included: median {statistics.median(one) * 1000:.2f} ms, "
        f"p99 {_p(one, 0.99):.2f} ms, max {one[-1] * 1000:.1f} ms "
        f"({count / wall_one:.0f} echoes/s, {failed_one} failed)",
        f"  echo 256 at once, connect included: median {statistics.median(many) * 1000:.2f} ms, "
        f"p99 {_p(many, 0.99):.2f} ms, max {many[-1] * 1000:.1f} ms "
        f"({count / wall_many:.0f} echoes/s, {failed_many} failed)",
        f"  health poll (0800/303), 256 at once, first (each terminal boots: state file "
        f"created, wear computed): {first[0]:,} in {first[3]:.1f} s = "
        f"{first[0] / first[3]:.0f} terminals/s, {first[1]} failed",
        f"  health poll again (state files exist), 256 at once: "
        f"{polled:,} in {wall_health:.1f} s = {health_rate:.0f} terminals/s "
        f"({health_rate / HEALTH_RATE:.2f}x the {HEALTH_RATE:.0f}/s target), "
        f"{failed_health} failed, {tampered} tampered ({tampered / max(polled, 1):.1%}, "
        f"--wear-profile mixed)",
        f"  every terminal answered within 1 s, health ≥ {HEALTH_RATE:.0f}/s and memory within "
        f"target: {'meets' if ok else 'MISSES'} the targets",
    ]


if __name__ == "__main__":
    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else COUNT)))
    os._exit(0)
