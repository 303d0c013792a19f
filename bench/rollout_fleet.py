"""Rollouts of an 8 KiB fee table to 1,000, 3,000 and 10,000 `possim fleet` terminals over
TCP, with the database, clean and with 5 % of frames dropped.

Each point is a fresh inventory (the seeded sample fleet, ``fleet.sample.seed``) in SQLite,
its first N deployed terminals served by one ``possim fleet`` process (one TCP port each,
one selector loop) and their links recorded. A table of ~8 KiB (389 rules, 10 blocks) is
published and rolled out in waves 1 %, 10 %, 100 % by one worker (``Worker.run`` in this
process: the many-links engine, 512 terminals at once), each push verified by a status
query and a test sale, every timer at the wire contract's value (T1 = frame time +
500 ms, T2 = 5 s, 3 resends). Reported: terminals/s, this process's CPU per terminal
(the whole host side: engine, codec, database) beside possim's, and the load average.
Targets (issue 18): 10,000 terminals ≤ 100 s (≥ 100 terminals/s), ≤ 5 ms host CPU per
terminal. ``python -m bench.rollout_fleet 1000 3000`` runs chosen points; ``--profile``
writes a cProfile of the host side of each clean point to ``rollout-N.prof``.
"""

from __future__ import annotations

import cProfile
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from fleet.core import db
from fleet.core.models import ATTEMPTS, JOBS, MERCHANTS
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.device import KeyRing
from fleet.fees import Group, publish
from fleet.inventory import import_catalog, import_merchants, import_terminals, set_links
from fleet.rollout import Worker, create
from fleet.sample.seed import write_possim_manifest, write_sample
from protocols.mac import generate_master_key_file

COUNTS = (1_000, 3_000, 10_000)
DROP = 0.05
TARGET_S = 100.0
"""For 10,000 terminals (the smaller points: in proportion)."""
TARGET_RATE = 100.0
TARGET_HOST_CPU_S = 0.005
PUSHERS = 512


def fee_toml(rules: int = 389, version_note: str = "") -> str:
    """A table of ``rules`` rules: 389 give 8,193 bytes on the wire (10 blocks of 900 B)."""
    lines = [
        f'name = "bench 8 KiB {version_note}"',
        'currency = "CNY"',
        "effective = 2026-01-01T00:00:00+08:00",
    ]
    for i in range(rules - 1):
        lines += [
            "[[rules]]",
            'card = "credit"',
            f'mcc = "{1000 + i:04d}"',
            f'rate = "{0.30 + (i % 50) / 100:.2f}%"',
            'max = "50.00"',
        ]
    lines += ["[[rules]]", 'card = "any"', 'rate = "0.38%"']
    return "\n".join(lines) + "\n"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_fleet(
    tmp: Path, count: int, extra: list[str]
) -> tuple[subprocess.Popen[str], Engine, Path]:
    """Inventory in SQLite + ``possim fleet`` serving its first ``count`` deployed terminals."""
    sample = write_sample(tmp / "sample", terminals=int(count * 1.15) + 20, merchants=count // 3)
    engine = db.connect(f"sqlite:///{tmp / 'fleet.db'}")
    db.upgrade(engine)
    import_catalog(engine, sample.catalog, actor="bench")
    import_merchants(engine, sample.merchants, actor="bench")
    import_terminals(engine, sample.terminals, actor="bench")
    with engine.begin() as conn:  # the bench's table is in CNY: every merchant is in China
        conn.execute(update(MERCHANTS).values(country="CN"))
    key = tmp / "master.key"
    generate_master_key_file(key)
    manifest = tmp / "manifest.csv"
    write_possim_manifest(engine, manifest, count)
    possim = str(Path(sys.executable).with_name("possim"))
    proc = subprocess.Popen(
        [possim, "--log-level", "WARNING", "fleet", "--manifest", str(manifest), "--tcp",
         "127.0.0.1:0", "--key-file", str(key), "--state-dir", str(tmp / "state"), *extra],
        stdout=subprocess.PIPE, stderr=(tmp / "fleet.log").open("w"), text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    links: dict[str, str] = {}
    for line in proc.stdout:
        words = line.split()
        if words == ["READY", "ALL"]:
            break
        links[words[1]] = words[2]
    set_links(engine, links, actor="bench")
    return proc, engine, key


def one_run(count: int, drop: float, profile: bool = False) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        extra = ["--drop", str(drop), "--seed", "8583"] if drop else []
        t0 = time.perf_counter()
        proc, engine, key = served_fleet(tmp, count, extra)
        setup = time.perf_counter() - t0
        try:
            table = tmp / "table.toml"
            table.write_text(fee_toml())
            plan = publish(engine, table, actor="bench", policy=FeePolicy())
            size = len(plan.table.to_bytes())
            policy = RolloutPolicy(backoff_s=0.5, lease_s=60, max_attempts=10)
            rid, sizes = create(
                engine,
                plan.version,
                group=Group(),
                policy=policy,
                actor="bench",
                waves=(10_000, 100_000, 1_000_000),
                # a loaded machine answers past T2 at times: the bench measures, never halts
                max_failure_ppm=1_000_000,
            )
            worker = Worker(
                engine,
                keys=KeyRing.read([key]),
                fee_policy=FeePolicy(),
                policy=policy,
                actor="bench",
                name="bench",
            )
            prof = cProfile.Profile() if profile else None
            cpu_sim0, cpu_me0 = _cpu(proc.pid), time.process_time()
            start = time.perf_counter()
            if prof is not None:
                prof.enable()
            final = worker.run(rid, PUSHERS)
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"rollout-{count}.prof")
            wall = time.perf_counter() - start
            cpu_sim, cpu_me = _cpu(proc.pid) - cpu_sim0, time.process_time() - cpu_me0
            load = os.getloadavg()[0]
            with engine.connect() as conn:
                done = conn.execute(
                    select(func.count()).select_from(JOBS).where(JOBS.c.status == "done")
                ).scalar_one()
                attempts = conn.execute(select(func.count()).select_from(ATTEMPTS)).scalar_one()
                errors = conn.execute(
                    select(func.count()).select_from(ATTEMPTS).where(ATTEMPTS.c.outcome == "error")
                ).scalar_one()
                resumed = conn.execute(
                    select(func.count()).select_from(ATTEMPTS).where(ATTEMPTS.c.resumed_from > 0)
                ).scalar_one()
                sample_error = conn.execute(
                    select(ATTEMPTS.c.error).where(ATTEMPTS.c.outcome == "error").limit(1)
                ).scalar()
        finally:
            proc.terminate()
            proc.wait(60)
        label = f"{drop:.0%} frame drop" if drop else "clean line"
        target = TARGET_S * count / 10_000
        lines = [
            f"{count:,} terminals, {label}: waves {sizes}, table {size:,} B "
            f"({-(-size // 900)} blocks), {PUSHERS} at once, rollout {final} (setup {setup:.0f} s)",
            f"  {done:,} of {sum(sizes):,} done in {wall:.1f} s = {done / wall:.1f} terminals/s "
            f"({TARGET_RATE / max(done / wall, 1e-9):.2f}x the {TARGET_RATE:.0f}/s target; "
            f"{wall / target:.2f}x {target:.0f} s); load average {load:.1f}",
            f"  CPU per terminal: host {1000 * cpu_me / max(done, 1):.2f} ms "
            f"({cpu_me / max(done, 1) / TARGET_HOST_CPU_S:.2f}x the 5 ms target), "
            f"possim {1000 * cpu_sim / max(done, 1):.2f} ms; attempts {attempts:,} "
            f"({errors} failed and retried, {resumed} resumed a partial download)",
        ]
        if sample_error:
            lines.append(f"  e.g. {sample_error}")
        return lines


def run(counts: tuple[int, ...] = COUNTS, drops: tuple[float, ...] = (0.0, DROP),
        profile: bool = False, echo: bool = False) -> list[str]:  # fmt: skip
    lines = [
        "Rollout of an 8 KiB fee table to possim fleet terminals over TCP (SQLite, one worker "
        "process, the engine; each push verified by status + test sale; T1 = frame + 0.5 s, "
        "T2 = 5 s)"
    ]
    for drop in drops:
        for count in counts:
            point = one_run(count, drop, profile and not drop)
            if echo:
                print("\n".join(point), flush=True)
            lines += point
    return lines


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    chosen = tuple(int(a) for a in args) or COUNTS
    drops = (0.0,) if "--clean" in flags else (DROP,) if "--drop" in flags else (0.0, DROP)
    run(chosen, drops, "--profile" in flags, echo=True)
