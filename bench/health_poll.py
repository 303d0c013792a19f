"""`posfleet health poll` of 1,000 `possim fleet` terminals over TCP (issue 16).

The inventory is the seeded sample fleet in SQLite; its first 1,000 deployed terminals are
served by one ``possim fleet --wear-profile mixed`` process (one TCP port each) and their
links recorded. One poll of all of them (:func:`fleet.device.health.poll`: the engine's
``health_job`` from one thread, 256 links at once, every sample stored in batches), then
again (the first contact boots each emulated terminal: its state file, its wear), then
with ``--sign-on`` (a sign-on per terminal, which also checks the serial): terminals per
second, the target (≥ 200/s), the ratio of the two, and the CPU each side
spent. The machine is shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.rollout_fleet import _cpu, served_fleet
from fleet.core.models import HEALTH_SAMPLES, TERMINAL_HEALTH
from fleet.device.health import poll, poll_targets

COUNT = 1000
TARGET = 200.0  # terminals per second


def run(count: int = COUNT) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        proc, engine, _ = served_fleet(Path(name), count, ["--wear-profile", "mixed"])
        try:
            targets = poll_targets(engine)
            figures = {}
            runs = (
                ("0800/303 poll, first contact (each terminal boots)", False),
                ("0800/303 poll again", False),
                ("sign-on poll (serials checked)", True),
            )
            for label, sign_on in runs:
                load = os.getloadavg()[0]
                sim0, me0 = _cpu(proc.pid), time.process_time()
                start = time.perf_counter()
                results = poll(engine, targets, sign_on=sign_on, concurrency=256)
                wall = time.perf_counter() - start
                ok = sum(r.ok for r in results)
                figures[label] = (wall, ok, time.process_time() - me0, _cpu(proc.pid) - sim0, load)
            with engine.connect() as conn:
                samples = conn.execute(select(func.count()).select_from(HEALTH_SAMPLES)).scalar()
                tampered = conn.execute(
                    select(func.count())
                    .select_from(TERMINAL_HEALTH)
                    .where(TERMINAL_HEALTH.c.tamper)
                ).scalar()
        finally:
            proc.terminate()
            proc.wait(30)
    lines = [
        f"health poll of {len(targets):,} possim fleet terminals over TCP (wear profile mixed; "
        "SQLite; 256 links at once, samples stored in batches of 200)"
    ]
    base = figures["0800/303 poll again"][0]
    for label, (wall, ok, me, sim, load) in figures.items():
        rate = ok / wall
        lines.append(
            f"  {label}: {ok:,} polled in {wall:.2f} s = {rate:,.0f} terminals/s "
            f"(target ≥ {TARGET:.0f}/s: {rate / TARGET:.2f}x); "
            f"{wall / base:.2f}x the warm 303 poll's time; "
            f"CPU fleet {me:.1f} s, possim {sim:.1f} s; load average {load:.1f}"
        )
    lines.append(f"  {samples:,} samples stored, {tampered} terminals report a tripped switch")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
