"""Flagging 1,000,000 terminals that each have a health history of 10 samples, beside
today's flagging of the same fleet without health, in one run (issue 16).

The fleet is :mod:`bench.fleet_scale`'s (the seeded sample, 1 M terminals in SQLite,
imported the same way). Steps, each in a child process of its own (its figures and its
own peak RSS): import; flag (no health yet: the reference); seed the health history; flag
again; the flagging query alone. Targets: flagging with health ≤ 15 s, ≤ 1 GiB peak RSS.

**The history** is 10 weekly samples per terminal (10 M ``health_sample`` rows), written
with set-based SQL on a raw ``sqlite3`` connection, and each terminal's
``terminal_health`` row (its latest sample, the least-squares sums of its three wear
counters and the slope and intercept they give, what
:func:`fleet.device.health.record_health` keeps as samples arrive) computed in closed form
from the same formulas — seeding is timed apart, it is not flagging. Per
terminal (``r`` its rowid): reader reads ``(7919 r mod 1,300,000) + 7k (r mod 1,500)`` in
week ``k``, printer lines ``(104729 r mod 5,500,000) + 7k (r mod 3,000)``, battery cycles
``(r mod 700) + k``; one terminal in 500 reports a tripped tamper switch in its last
sample. A spread: some parts past 90 % of their rated life, some reaching it within the
horizon, most not.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from bench.fleet_scale import AS_OF, MERCHANTS, TERMINALS, _peak_mib, prepare
from bench.fleet_scale import STEPS as SCALE_STEPS
from fleet.replacements.wear import days

TARGET_S, TARGET_MIB = 15.0, 1024.0
SAMPLES = 10
WEEKS = [datetime.combine(AS_OF, clock(3), UTC) - timedelta(days=7 * (SAMPLES - 1 - k))
         for k in range(SAMPLES)]  # fmt: skip


def _text(at: datetime) -> str:
    return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def step_seed_health(db_path: str, sample: str) -> dict[str, Any]:
    """10 samples per terminal and each terminal's health row (see the module's notes)."""
    xs = [days(at) for at in WEEKS]
    sx, sxx = sum(xs), sum(x * x for x in xs)
    skx = sum(k * x for k, x in enumerate(xs))
    last = _text(WEEKS[-1])
    weeks = ", ".join(f"({k}, '{_text(at)}')" for k, at in enumerate(WEEKS))
    conn = sqlite3.connect(db_path)
    t0 = time.perf_counter()
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        conn.execute(
            f"""WITH w(k, at) AS (VALUES {weeks})
            INSERT INTO health_sample (serial, at, source, battery_level, battery_health,
                battery_cycles, paper, printer_lines, chip, contactless, magstripe, tamper,
                tampered_at, uptime, last_reboot, free_storage)
            SELECT t.serial, w.at, 'poll', 80, 95, (t.rowid % 700) + w.k, 0,
                (t.rowid * 104729 % 5500000) + 7 * w.k * (t.rowid % 3000),
                ((t.rowid * 7919 % 1300000) + 7 * w.k * (t.rowid % 1500))
                  - ((t.rowid * 7919 % 1300000) + 7 * w.k * (t.rowid % 1500)) / 10,
                4000,
                ((t.rowid * 7919 % 1300000) + 7 * w.k * (t.rowid % 1500)) / 10,
                t.rowid % 500 = 0 AND w.k = {SAMPLES - 1}, NULL, 3600, 1, 1000000000
            FROM terminal t, w ORDER BY t.serial, w.at"""
        )
    t1 = time.perf_counter()

    def sums(base: str, rate: str) -> str:  # y_k = base + rate k: n, Σx, Σx², Σy, Σxy
        return (
            f"{SAMPLES}, {sx!r}, {sxx!r}, {SAMPLES}.0 * {base} + {45.0} * {rate}, "
            f"{sx!r} * {base} + {skx!r} * {rate}"
        )

    reader, reader_rate = "(t.rowid * 7919 % 1300000)", "7 * (t.rowid % 1500)"
    printer, printer_rate = "(t.rowid * 104729 % 5500000)", "7 * (t.rowid % 3000)"
    battery = "(t.rowid % 700)"
    with conn:
        conn.execute(
            f"""INSERT INTO terminal_health (serial, at, samples, tamper, tampered_at,
                battery_level, battery_health, battery_cycles, paper, printer_lines, reader,
                contactless, uptime, last_reboot, free_storage,
                reader_n, reader_sx, reader_sxx, reader_sy, reader_sxy,
                printer_n, printer_sx, printer_sxx, printer_sy, printer_sxy,
                battery_n, battery_sx, battery_sxx, battery_sy, battery_sxy)
            SELECT t.serial, '{last}', {SAMPLES}, t.rowid % 500 = 0, NULL, 80, 95,
                {battery} + {SAMPLES - 1}, 0, {printer} + {SAMPLES - 1} * {printer_rate},
                {reader} + {SAMPLES - 1} * {reader_rate}, 4000, 3600, 1, 1000000000,
                {sums(reader, reader_rate)}, {sums(printer, printer_rate)},
                {sums(battery, "1")}
            FROM terminal t"""
        )
        for c in ("reader", "printer", "battery"):  # Fit.slope and Fit.intercept, in SQL
            n, sx, sxx, sy, sxy = (f"{c}_{s}" for s in ("n", "sx", "sxx", "sy", "sxy"))
            spread = f"({n} * {sxx} - {sx} * {sx})"
            conn.execute(
                f"UPDATE terminal_health SET {c}_slope = CASE WHEN {n} >= 2 AND "
                f"{spread} > 1e-9 * max(1.0, {n} * {sxx}) "
                f"THEN ({n} * {sxy} - {sx} * {sy}) / {spread} END"
            )
            conn.execute(
                f"UPDATE terminal_health SET {c}_intercept = ({sy} - {c}_slope * {sx}) / {n} "
                f"WHERE {c}_slope IS NOT NULL"
            )
    t2 = time.perf_counter()
    samples = conn.execute("SELECT count(*) FROM health_sample").fetchone()[0]
    conn.close()
    return {"samples_s": t1 - t0, "summary_s": t2 - t1, "samples": samples}


STEPS = SCALE_STEPS | {"seed_health": step_seed_health}


def child(step: str, db_path: str, sample: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.health_scale", "--child", step, db_path, sample]
    root = str(Path(__file__).resolve().parent.parent)
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    # the child's CPU (start-up included): what a shared machine does not inflate
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def measure(tmp: Path, terminals: int, merchants: int) -> dict[str, Any]:
    db_path, sample, _ = prepare(tmp, terminals, merchants)
    out: dict[str, Any] = {"terminals": terminals}
    for name, step in (("import", "import"), ("plain", "flag"), ("seed", "seed_health"),
                       ("health", "flag"), ("health_sql", "flag_sql")):  # fmt: skip
        out[name] = child(step, db_path, sample)
    out["db_mib"] = Path(db_path).stat().st_size / 2**20
    return out


def report(m: dict[str, Any]) -> list[str]:
    n, plain, health, seed, sql = (
        m["terminals"],
        m["plain"],
        m["health"],
        m["seed"],
        m["health_sql"],
    )
    meets = health["flag_s"] <= TARGET_S and health["peak_mib"] <= TARGET_MIB
    return [
        f"## flagging {n:,} terminals with a health history of {SAMPLES} samples each "
        f"(SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs)",
        f"  seed: {seed['samples']:,} samples in {seed['samples_s']:.1f} s, the per-terminal "
        f"health rows in {seed['summary_s']:.1f} s (set-based SQL, not timed as flagging)",
        f"  today's flagging, no health: {plain['flag_s']:.1f} s, {plain['flagged']:,} flagged; "
        f"peak RSS {plain['peak_mib']:.0f} MiB; load average {plain['load']:.1f}",
        f"  flagging with health: {health['flag_s']:.1f} s (target ≤ {TARGET_S:g} s: "
        f"{health['flag_s'] / TARGET_S:.2f}x), {health['flagged']:,} flagged; "
        f"{health['flag_s'] / plain['flag_s']:.2f}x the flagging without health; load average "
        f"{health['load']:.1f}",
        f"    CPU of the two flagging steps (each a child, start-up included): "
        f"{health['cpu_s']:.1f} s with health vs {plain['cpu_s']:.1f} s without: "
        f"{health['cpu_s'] / plain['cpu_s']:.2f}x",
        f"    the query alone (raw sqlite3 rows): {sql['sql_s']:.1f} s = "
        f"{100 * sql['sql_s'] / health['flag_s']:.0f} % of flag()",
        f"  peak RSS, flagging with health: {health['peak_mib']:.0f} MiB (target ≤ "
        f"{TARGET_MIB:g} MiB: {health['peak_mib'] / TARGET_MIB:.2f}x); database "
        f"{m['db_mib']:.0f} MiB; both targets: {'meets' if meets else 'MISSES'}",
    ]


def run(terminals: int = TERMINALS, merchants: int = MERCHANTS) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return report(measure(Path(tmp), terminals, merchants))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _, _, name, db_arg, sample_arg = sys.argv
        figures = STEPS[name](db_arg, sample_arg)
        figures["peak_mib"] = _peak_mib()
        print(json.dumps(figures))
    else:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else TERMINALS
        print("\n".join(run(count, max(1, count // 10))))
