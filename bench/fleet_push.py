"""Protocol-level push: an 8 KiB fee table to 1,000, 3,000 and 10,000 `possim fleet`
terminals over TCP with the host's many-links engine (no database), clean and with 5 %
of frames dropped.

Each point starts its own ``possim fleet --count N`` (one process, one selector thread,
fresh state) and pushes with :func:`protocols.engine.push_job`: sign-on, 10 blocks,
commit, status, test sale — what a rollout does per terminal — 256 links at once, every
timer at the wire contract's value (T1 = frame time + 500 ms, T2 = 5 s, 3 resends).
A push whose link broke is submitted again at once (it resumes), at most 5 attempts. Reported:
terminals/s, host CPU per terminal (this process) beside the terminal side's (possim),
the possim process's memory, resends.

At the first point (1,000), after the push, the engine rotates every terminal's key
(:func:`protocols.engine.rotate_job`: sign-on, 0800/161 change, 0800/162 confirmation),
beside the push's time (issue 17's target: rotation ≤ 0.5× the push).

Side by side in the same run, at 1,000 terminals: the reference host path of today's
rollout worker without its database — 32 threads, each a blocking ``Link`` +
``HostSession`` per terminal — against the same ``possim fleet``. Ratios are also given
against issue 18's figures (2026-12-01, 1,000 terminals with the database: 80.8 s,
12.4 terminals/s, 35 ms host and 73 ms terminal CPU per push). Targets: ≥ 100
terminals/s to 10,000 terminals, ≤ 5 ms host CPU per push.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.possim_proc import Fleet, memory_mib
from protocols.engine import Engine, Job, Outcome, VerifySale, push_job, rotate_job
from protocols.feetable import FeeRule, FeeTable
from protocols.flows import PreparedTable
from protocols.keys import TerminalKeyRing
from protocols.link import Link
from protocols.mac import MasterKey
from protocols.session import HostSession
from protocols.values import CardType, utc_datetime

COUNTS = (1_000, 3_000, 10_000)
DROP = 0.05
CONCURRENCY = 512
ATTEMPTS = 5
ISSUE = {"seconds": 80.8, "rate": 12.4, "host_ms": 35.0, "terminal_ms": 73.0}
SALE = VerifySale(10_000, CardType.CREDIT)


def table_8k(version: int = 7) -> FeeTable:
    """389 rules: 8,193 bytes, 10 blocks of ≤ 900 bytes (the rollout bench's table)."""
    rules = [FeeRule(CardType.CREDIT, 1000 + i, 1000 + i, 3000 + (i % 50) * 100, max_fee=5000)
             for i in range(388)]  # fmt: skip
    rules.append(FeeRule(0, 0, 9999, 3800))
    return FeeTable(version, utc_datetime(1_767_225_600), 156, tuple(rules))


def _push(fleet: Fleet, table: PreparedTable) -> dict[str, float]:
    """Every terminal once (:func:`_run`)."""
    return _run(
        fleet,
        [
            push_job(url, tid, key, table, serial=serial, sale=SALE)
            for serial, tid, key, url in fleet.terminals
        ],
    )


def _rotate(fleet: Fleet, new: MasterKey) -> dict[str, float]:
    """Every terminal to key ``new`` (0800/161 + 162 after a sign-on), signed by the
    version each reports (:func:`_run`)."""
    masters = [fleet.master, new]
    jobs = []
    for serial, tid, _, url in fleet.terminals:
        ring = TerminalKeyRing.derived(masters, serial)
        jobs.append(rotate_job(url, tid, ring, new.terminal_key(serial), serial=serial))
    return _run(fleet, jobs)


def _run(fleet: Fleet, jobs: list[Job]) -> dict[str, float]:
    """Run ``jobs``; a job whose link broke is submitted again at once (it resumes), at
    most ``ATTEMPTS`` times in all."""
    lock = threading.Lock()
    all_done = threading.Event()
    tally = {"done": 0, "failed": 0, "retried": 0, "open": len(jobs)}
    engine = Engine(concurrency=CONCURRENCY)

    def submit(job: Job, attempt: int) -> None:
        future = engine.submit(job)
        future.add_done_callback(lambda f: finished(f.result(), attempt))

    def finished(outcome: Outcome, attempt: int) -> None:
        with lock:
            if outcome.ok:
                tally["done"] += 1
            elif outcome.retryable and attempt < ATTEMPTS:
                tally["retried"] += 1
                submit(outcome.job, attempt + 1)
                return
            else:
                tally["failed"] += 1
            tally["open"] -= 1
            if not tally["open"]:
                all_done.set()

    cpu_sim, cpu_me = fleet.cpu(), time.process_time()
    start = time.perf_counter()
    engine.start()
    try:
        for job in jobs:
            submit(job, 1)
        all_done.wait()
    finally:
        engine.close()
    wall = time.perf_counter() - start
    n = len(jobs)
    return {
        "n": n,
        "done": tally["done"],
        "failed": tally["failed"],
        "retried": tally["retried"],
        "wall": wall,
        "rate": tally["done"] / wall,
        "host_ms": 1000 * (time.process_time() - cpu_me) / n,
        "terminal_ms": 1000 * (fleet.cpu() - cpu_sim) / n,
        "resends": engine.stats.resends,
        "rss": memory_mib(fleet.pid),
        "peak": memory_mib(fleet.pid, "VmHWM"),
    }


def _reference(fleet: Fleet, table: FeeTable, threads: int = 32) -> dict[str, float]:
    """Today's worker path without its database: a thread, a Link and a HostSession each."""

    def push(item: tuple[str, str, bytes, str]) -> bool:
        _, tid, key, url = item
        try:
            with Link(url, 115200) as link:
                session = HostSession(link, tid, key)
                signed = session.sign_on()
                session.push(table, signed_on=signed)
                session.status()
                session.sale(SALE.amount, SALE.card_type, currency=table.currency)
            return True
        except Exception:
            return False

    cpu_sim, cpu_me = fleet.cpu(), time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = sum(pool.map(push, fleet.terminals))
    wall = time.perf_counter() - start
    n = len(fleet.terminals)
    return {
        "n": n,
        "done": done,
        "wall": wall,
        "rate": done / wall,
        "host_ms": 1000 * (time.process_time() - cpu_me) / n,
        "terminal_ms": 1000 * (fleet.cpu() - cpu_sim) / n,
    }


def _line(label: str, r: dict[str, float]) -> str:
    return (
        f"  {label:<22} {r['done']:>6,.0f}/{r['n']:<6,.0f} in {r['wall']:6.1f} s = "
        f"{r['rate']:6.1f} terminals/s; CPU per push: host {r['host_ms']:5.2f} ms, "
        f"terminal {r['terminal_ms']:5.2f} ms"
    )


def run(counts: tuple[int, ...] = COUNTS) -> list[str]:
    table = table_8k()
    size = len(table.to_bytes())
    lines = [
        f"## Push of an {size:,}-byte fee table ({-(-size // 900)} blocks) to possim fleet "
        f"terminals over TCP: engine, {CONCURRENCY} links at once, T1 = frame + 0.5 s, T2 = 5 s"
    ]
    results: dict[tuple[int, float], dict[str, float]] = {}
    for drop in (0.0, DROP):
        lines.append("clean line:" if not drop else f"{drop:.0%} of frames dropped (both ways):")
        for count in counts:
            extra = ["--drop", str(drop), "--seed", "8583"] if drop else []
            with tempfile.TemporaryDirectory() as tmp, Fleet(Path(tmp), count, extra) as fleet:
                r = _push(fleet, PreparedTable(table))
                if not drop and count == counts[0]:
                    # the same terminals again, a new version, the reference host path
                    ref = _reference(fleet, table_8k(8))
                    # then a key rotation of every terminal (issue 17: ≤ 0.5x the push)
                    rot = _rotate(fleet, MasterKey(2, bytes(range(100, 116))))
            results[(count, drop)] = r
            lines.append(
                _line(f"engine, {count:,}", r)
                + f"; {r['resends']:,.0f} resends, {r['retried']:.0f} retried, "
                f"{r['failed']:.0f} failed; possim "
                f"{r['rss']:.0f} MiB (peak {r['peak']:.0f})"
            )
            if not drop and count == counts[0]:
                lines.append(_line(f"32 threads, {count:,}", ref) + " (reference)")
                lines.append(
                    f"  engine vs reference at {count:,}: {r['rate'] / ref['rate']:.2f}x the "
                    f"rate, {r['host_ms'] / ref['host_ms']:.2f}x the host CPU per push"
                )
                ratio = rot["wall"] / r["wall"]
                lines.append(
                    _line(f"key rotation, {count:,}", rot).replace("per push", "per rotation")
                    + f"; {rot['failed']:.0f} failed; {ratio:.2f}x the push's time (target "
                    f"≤ 0.5x: {'meets' if ratio <= 0.5 else 'MISSES'})"
                )
    clean = results[(counts[-1], 0.0)]
    lossy = results[(counts[-1], DROP)]
    first = results[(counts[0], 0.0)]
    lines += [
        f"cost per push from {counts[0]:,} to {counts[-1]:,} terminals (clean): host "
        f"{clean['host_ms'] / first['host_ms']:.2f}x, terminal "
        f"{clean['terminal_ms'] / first['terminal_ms']:.2f}x (1.00x = linear total cost)",
        f"vs issue 18 (1,000 terminals with the database, 2026-12-01): "
        f"{clean['rate'] / ISSUE['rate']:.1f}x the rate at {counts[-1]:,}, host CPU "
        f"{clean['host_ms'] / ISSUE['host_ms']:.3f}x, terminal CPU "
        f"{clean['terminal_ms'] / ISSUE['terminal_ms']:.3f}x",
        f"targets at {counts[-1]:,}: ≥ 100 terminals/s: clean {clean['rate']:.0f} "
        f"({'meets' if clean['rate'] >= 100 else 'MISSES'}), {DROP:.0%} drop "
        f"{lossy['rate']:.0f} ({'meets' if lossy['rate'] >= 100 else 'MISSES'}); host ≤ 5 ms: "
        f"{max(clean['host_ms'], lossy['host_ms']):.2f} ms "
        f"({'meets' if max(clean['host_ms'], lossy['host_ms']) <= 5 else 'MISSES'})",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(run(tuple(int(a) for a in sys.argv[1:]) or COUNTS)))
