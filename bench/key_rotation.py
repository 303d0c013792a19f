"""Rotating the MAC keys of 1,000 `possim fleet` terminals over TCP, beside pushing them an
8 KiB fee table, in the same run on the same fleet.

The fleet is ``bench.rollout_fleet``'s: the seeded sample inventory in SQLite, its first
1,000 deployed terminals served by one ``possim fleet`` process (one TCP port each). First
a rollout of the ~8 KiB table (10 blocks; each push verified by a status query and a test
sale), then a key rollout from master key v1 to v2 (``create_key_rollout``: each terminal
changed with 0800/161, confirmed with 0800/162, and checked to refuse the old key with
``A0``), both in waves 1 %, 10 %, 100 % by one worker process with 32 threads, T1 = frame
time + 500 ms (the wire contract's). Target (issue 17): rotation ≤ 0.5 × the push's time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from bench.rollout_fleet import PUSHERS, _cpu, fee_toml, served_fleet
from fleet.core.models import ATTEMPTS, JOBS, TERMINALS
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.device import KeyRing
from fleet.fees import Group, publish
from fleet.rollout import Worker, create, create_key_rollout
from protocols.mac import MasterKey, read_master_key, write_master_key_file

COUNT = 1000
TARGET_RATIO = 0.5
WAVES = (10_000, 100_000, 1_000_000)
T1_MARGIN = 0.5
"""The wire contract's T1: frame time + 500 ms."""


def _timed(worker: Worker, rollout_id: int, possim_pid: int) -> tuple[float, float, float, str]:
    cpu_sim0, cpu_me0 = _cpu(possim_pid), time.process_time()
    start = time.perf_counter()
    final = worker.run(rollout_id, PUSHERS)
    wall = time.perf_counter() - start
    return wall, time.process_time() - cpu_me0, _cpu(possim_pid) - cpu_sim0, str(final)


def _counts(engine: Engine, rollout_id: int, kind: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        done = conn.execute(
            select(func.count())
            .select_from(JOBS)
            .where(JOBS.c.rollout_id == rollout_id, JOBS.c.status == "done")
        ).scalar_one()
        errors = conn.execute(
            select(func.count())
            .select_from(ATTEMPTS)
            .join(JOBS, JOBS.c.id == ATTEMPTS.c.job_id)
            .where(JOBS.c.rollout_id == rollout_id, ATTEMPTS.c.outcome == "error")
        ).scalar_one()
        on_new = conn.execute(
            select(func.count()).select_from(TERMINALS).where(TERMINALS.c.key_version == 2)
        ).scalar_one()
    return int(done), int(errors), int(on_new) if kind == "key" else 0


def run(count: int = COUNT) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        proc, engine, key = served_fleet(tmp, count, [])
        try:
            v1 = read_master_key(key)
            v2_file = tmp / "fleet-v2.key"
            write_master_key_file(v2_file, MasterKey(2, os.urandom(16)))
            v2 = read_master_key(v2_file)
            policy = RolloutPolicy(backoff_s=0.5, lease_s=60)
            worker: Any = Worker(
                engine, keys=KeyRing.of(v1, v2), fee_policy=FeePolicy(), policy=policy,
                actor="bench", name="bench", t1_margin=T1_MARGIN,
            )  # fmt: skip
            table = tmp / "table.toml"
            table.write_text(fee_toml())
            plan = publish(engine, table, actor="bench", policy=FeePolicy())
            size = len(plan.table.to_bytes())
            push_id, sizes = create(
                engine, plan.version, group=Group(), policy=policy, actor="bench", waves=WAVES
            )
            push = _timed(worker, push_id, proc.pid)
            pushed = _counts(engine, push_id, "fees")
            key_id, _ = create_key_rollout(
                engine, v1, v2, group=Group(), policy=policy, actor="bench", waves=WAVES
            )
            rotate = _timed(worker, key_id, proc.pid)
            rotated = _counts(engine, key_id, "key")
        finally:
            proc.terminate()
            proc.wait(30)
    n = sum(sizes)
    ratio = rotate[0] / push[0]
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    return [
        f"Key rotation of {n:,} possim fleet terminals over TCP beside an 8 KiB fee-table push "
        f"(SQLite, one worker process, {PUSHERS} threads, waves {sizes}, T1 = frame + 500 ms)",
        f"  push {size:,} B ({-(-size // 900)} blocks), verified by status + test sale: "
        f"{pushed[0]:,} done in {push[0]:.1f} s ({n / push[0]:.1f} terminals/s), rollout "
        f"{push[3]}; {pushed[1]} failed attempts; CPU fleet {push[1]:.1f} s, possim "
        f"{push[2]:.1f} s",
        f"  key v1 → v2 (change, confirmation, old key refused A0): {rotated[0]:,} done in "
        f"{rotate[0]:.1f} s ({n / rotate[0]:.1f} terminals/s), rollout {rotate[3]}; "
        f"{rotated[1]} failed attempts; {rotated[2]:,} terminals recorded on v2; CPU fleet "
        f"{rotate[1]:.1f} s, possim {rotate[2]:.1f} s",
        f"  rotation / push = {ratio:.2f}x (target ≤ {TARGET_RATIO}x: {verdict}); CPU per "
        f"terminal: fleet {1000 * rotate[1] / n:.1f} vs {1000 * push[1] / n:.1f} ms, possim "
        f"{1000 * rotate[2] / n:.1f} vs {1000 * push[2] / n:.1f} ms",
    ]


if __name__ == "__main__":
    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else COUNT)))
