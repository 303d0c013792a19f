"""A rollout to 1,000 `possim fleet` terminals over TCP: an 8 KiB fee table, then again
with 5 % of frames dropped.

The inventory is the seeded sample fleet (``fleet.sample.seed``) in SQLite; its first 1,000
deployed terminals are served by one ``possim fleet`` process (one TCP port each) and
their links recorded. A table of ~8 KiB (389 rules, 10 blocks) is published and rolled
out in waves 1 %, 10 %, 100 % by one ``rollout run`` worker process with 32 pushers, each
push verified by a status query and a test sale. Target (issue 5): ≤ 60 s wall on this
2-core machine, for the clean line and with 5 % frame drop (``possim fleet --drop 0.05``:
frames and ACK/NAKs, both directions, lost at the terminal's port).
"""

from __future__ import annotations

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
from fleet.fees import Group, publish
from fleet.inventory import import_catalog, import_merchants, import_terminals, set_links
from fleet.rollout import Worker, create
from fleet.sample.seed import write_possim_manifest, write_sample
from protocols.mac import generate_master_key_file, load_master_key

COUNT = 1000
TARGET_S = 60.0
PUSHERS = 32


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


def one_run(count: int, drop: float) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        extra = ["--drop", str(drop), "--seed", "8583"] if drop else []
        proc, engine, key = served_fleet(tmp, count, extra)
        try:
            table = tmp / "table.toml"
            table.write_text(fee_toml())
            plan = publish(engine, table, actor="bench", policy=FeePolicy())
            size = len(plan.table.to_bytes())
            policy = RolloutPolicy(backoff_s=0.5, lease_s=60)
            rid, sizes = create(
                engine,
                plan.version,
                group=Group(),
                policy=policy,
                actor="bench",
                waves=(10_000, 100_000, 1_000_000),
            )
            worker = Worker(
                engine,
                master_key=load_master_key(key),
                fee_policy=FeePolicy(),
                policy=policy,
                actor="bench",
                name="bench",
            )
            cpu_sim0, cpu_me0 = _cpu(proc.pid), time.process_time()
            start = time.perf_counter()
            final = worker.run(rid, PUSHERS)
            wall = time.perf_counter() - start
            cpu_sim, cpu_me = _cpu(proc.pid) - cpu_sim0, time.process_time() - cpu_me0
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
            proc.wait(30)
        label = f"{drop:.0%} frame drop" if drop else "clean line"
        lines = [
            f"{label}: {sizes} terminals per wave, table {size:,} B ({-(-size // 900)} blocks), "
            f"{PUSHERS} pushers, rollout {final}",
            f"  {done:,} of {sum(sizes):,} terminals done in {wall:.1f} s = "
            f"{done / wall:.1f} terminals/s (target ≤ {TARGET_S:.0f} s: {wall / TARGET_S:.2f}x)",
            f"  attempts {attempts:,} ({errors} failed and retried, {resumed} resumed a partial "
            f"download); CPU: fleet tool {cpu_me:.1f} s, possim {cpu_sim:.1f} s",
        ]
        if sample_error:
            lines.append(f"  e.g. {sample_error}")
        return lines


def run(count: int = COUNT) -> list[str]:
    lines = [
        f"Rollout of an 8 KiB fee table to {count:,} possim fleet terminals over TCP "
        "(SQLite, one worker process; each push verified by status + test sale)"
    ]
    lines += one_run(count, 0.0)
    lines += one_run(count, 0.05)
    return lines


if __name__ == "__main__":
    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else COUNT)))
