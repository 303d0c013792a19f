"""A fleet of 1,000,000 terminals on SQLite and on PostgreSQL: import, replacement
flagging, reports, memory.

On PostgreSQL (issue 18: import ≤ 60 s, flagging ≤ 10 s, fleet report ≤ 5 s, ≤ 1 GiB) the
same files go into a fresh database ``bench_<pid>`` on the local server, created and dropped
by the run: imports COPY their rows (psycopg 3), flagging and reports read through
server-side cursors.

Targets (issue 4): importing 1 M terminals ≤ 60 s, flagging them for replacement ≤ 10 s,
peak memory ≤ 1 GiB. The sample files come from :func:`fleet.sample.seed.write_sample`
(generating them is timed apart, it is not part of the import). Each measured step runs
in a child process of its own (``python -m bench.fleet_scale --child STEP …``), which
reports its figures and its own peak RSS (``VmHWM``) as one JSON line, so the memory of
one step is not mixed with another's or with this process's.

Beside the figures, two references from the same run: the *floor*, a plain ``sqlite3``
``executemany`` of the same CSV rows into an equivalent table (same columns and
indexes, no validation, one transaction), and the flagging *query alone* (the same SQL
statement executed on the raw connection, rows fetched as tuples).

The ops reports (issue 7) run over the same million terminals: ``report fleet`` as HTML
beside its floor (the same ``GROUP BY`` on a raw ``sqlite3`` connection), and ``report
replacements`` as CSV (every flagged terminal) and as HTML (the first 100 and the
charts) beside flagging alone.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from fleet.core import db
from fleet.core.models import TERMINALS as TERMINAL_TABLE
from fleet.core.policy import ReplacementPolicy
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.replacements import Forecast, flag
from fleet.replacements.query import flag_statement
from fleet.sample.seed import write_sample

TERMINALS = 1_000_000
MERCHANTS = 100_000
AS_OF = date(2026, 11, 1)
TARGETS = {"import": 60.0, "flag": 10.0, "memory": 1024.0, "report": 5.0}  # s, s, MiB, s
ACTOR = "bench"


# --- the steps (each runs in a child process) ------------------------------------------


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _engine(db_path: str) -> Engine:
    """``db_path``: a SQLite file, or a database URL (PostgreSQL)."""
    return db.connect(db_path if "://" in db_path else f"sqlite:///{db_path}")


def step_import(db_path: str, sample: str) -> dict[str, Any]:
    """Catalog, merchants and terminals into the (migrated, empty) database."""
    engine = _engine(db_path)
    d = Path(sample)
    t0 = time.perf_counter()
    import_catalog(engine, d / "catalog.toml", actor=ACTOR)
    t1 = time.perf_counter()
    merchants = import_merchants(engine, d / "merchants.csv", actor=ACTOR)
    t2 = time.perf_counter()
    terminals = import_terminals(engine, d / "terminals.csv", actor=ACTOR)
    t3 = time.perf_counter()
    engine.dispose()
    return {
        "catalog_s": t1 - t0,
        "merchants_s": t2 - t1,
        "merchants": merchants.inserted,
        "terminals_s": t3 - t2,
        "total_s": t3 - t0,
        "rows": terminals.rows,
        "inserted": terminals.inserted,
        "updated": terminals.updated,
    }


def step_reimport(db_path: str, sample: str) -> dict[str, Any]:
    """The same inventory file again: an idempotent upsert, nothing new."""
    engine = _engine(db_path)
    t0 = time.perf_counter()
    result = import_terminals(engine, Path(sample) / "terminals.csv", actor=ACTOR)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {
        "terminals_s": seconds,
        "rows": result.rows,
        "inserted": result.inserted,
        "updated": result.updated,
    }


def step_flag(db_path: str, sample: str) -> dict[str, Any]:
    """Every replacement flagged, consumed, and summed into a forecast."""
    engine = _engine(db_path)
    forecast = Forecast()
    flagged = 0
    t0 = time.perf_counter()
    for replacement in flag(engine, ReplacementPolicy(), as_of=AS_OF):
        forecast.add(replacement)
        flagged += 1
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {
        "flag_s": seconds,
        "flagged": flagged,
        "units": forecast.total_units,
        "cost": forecast.total_cost(),
    }


def flag_sql(engine: Engine) -> str:
    """The statement :func:`fleet.replacements.flag` runs, as SQLite text (binds inlined)."""
    policy = ReplacementPolicy()
    horizon_end = AS_OF + timedelta(days=policy.horizon_days)
    stmt = flag_statement(policy, horizon_end).order_by(TERMINAL_TABLE.c.serial)
    return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def step_flag_sql(db_path: str, sample: str) -> dict[str, Any]:
    """The flagging query alone: executed on a plain ``sqlite3`` connection, raw tuples."""
    sql = flag_sql(_engine(db_path))
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA temp_store=MEMORY")  # as fleet.core.db sets it (the ORDER BY's sort)
    rows = 0
    t0 = time.perf_counter()
    cur = conn.execute(sql)
    while batch := cur.fetchmany(10_000):
        rows += len(batch)
    seconds = time.perf_counter() - t0
    conn.close()
    return {"sql_s": seconds, "rows": rows}


def step_floor(db_path: str, sample: str) -> dict[str, Any]:
    """The floor: the CSV rows into an equivalent table with ``executemany``, unchecked.

    ``db_path`` is a migrated database; the terminal table and its indexes are copied
    (as DDL) into a fresh file next to it, under the same pragmas, without the foreign
    keys' parent tables (so no reference is checked).
    """
    src = sqlite3.connect(db_path)
    ddl = [
        sql
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'terminal' AND sql IS NOT NULL"
        )
    ]
    src.close()
    floor_path = Path(db_path).with_name("floor.db")
    floor_path.unlink(missing_ok=True)
    conn = sqlite3.connect(floor_path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    for statement in ddl:
        conn.execute(statement)
    t0 = time.perf_counter()
    with (Path(sample) / "terminals.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        # the import fills the columns the file lacks with their defaults: so does the floor
        extra = {"active_version": 0, "pending_version": 0}
        names = [*header, *extra]
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO terminal ({', '.join(names)}) VALUES ({marks})"
        tail = tuple(extra.values())
        conn.execute("BEGIN")
        conn.executemany(sql, ((*[c or None for c in cells], *tail) for cells in reader))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    (rows,) = conn.execute("SELECT count(*) FROM terminal").fetchone()
    conn.close()
    return {"floor_s": seconds, "rows": rows}


def step_report_fleet(db_path: str, sample: str) -> dict[str, Any]:
    """``posfleet report fleet --format html``: the queries, the builder, the charts."""
    from fleet.reports import fleet_report, render  # noqa: PLC0415

    engine = _engine(db_path)
    t0 = time.perf_counter()
    report = fleet_report(engine, AS_OF)
    t1 = time.perf_counter()
    page = render.html(report)
    t2 = time.perf_counter()
    engine.dispose()
    return {"query_s": t1 - t0, "html_s": t2 - t1, "total_s": t2 - t0, "bytes": len(page)}


def step_fleet_floor(db_path: str, sample: str) -> dict[str, Any]:
    """The fleet report's floor: its two GROUP BYs on a raw ``sqlite3`` connection."""
    conn = sqlite3.connect(db_path)
    t0 = time.perf_counter()
    groups = conn.execute(
        "SELECT model, firmware, status, count(*) FROM terminal GROUP BY model, firmware, status"
    ).fetchall()
    days = conn.execute(
        "SELECT manufactured_on, count(*) FROM terminal "
        "WHERE status IN ('in_stock', 'deployed', 'faulty') GROUP BY manufactured_on"
    ).fetchall()
    seconds = time.perf_counter() - t0
    conn.close()
    return {"floor_s": seconds, "groups": len(groups), "days": len(days)}


def step_report_replacements(db_path: str, sample: str) -> dict[str, Any]:
    """``posfleet report replacements``: CSV of every flagged terminal, then HTML (first
    100 rows and the charts), each from a fresh query."""
    from fleet.reports import render, replacements_report  # noqa: PLC0415

    engine = _engine(db_path)
    policy = ReplacementPolicy()
    t0 = time.perf_counter()
    report = replacements_report(engine, policy, AS_OF)
    keys, rows = render.csv_rows(report)
    with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
        writer = csv.DictWriter(sink, keys, lineterminator="\n")
        writer.writeheader()
        written = 0
        for row in rows:
            writer.writerow(row)
            written += 1
    t1 = time.perf_counter()
    page = render.html(replacements_report(engine, policy, AS_OF, limit=100))
    t2 = time.perf_counter()
    engine.dispose()
    return {"csv_s": t1 - t0, "rows": written, "html_s": t2 - t1, "bytes": len(page)}


STEPS = {
    "import": step_import,
    "reimport": step_reimport,
    "flag": step_flag,
    "flag_sql": step_flag_sql,
    "floor": step_floor,
    "report_fleet": step_report_fleet,
    "fleet_floor": step_fleet_floor,
    "report_replacements": step_report_replacements,
}


def child(step: str, db_path: str, sample: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its figures plus its peak RSS (``peak_mib``)."""
    cmd = [sys.executable, "-m", "bench.fleet_scale", "--child", step, db_path, sample]
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the whole run ---------------------------------------------------------------------


def prepare(tmp: Path, terminals: int, merchants: int) -> tuple[str, str, float]:
    """Sample files and a migrated, empty database: (db path, sample dir, generation s)."""
    sample = tmp / "sample"
    t0 = time.perf_counter()
    write_sample(sample, terminals=terminals, merchants=merchants, as_of=AS_OF)
    generated = time.perf_counter() - t0
    db_path = tmp / "fleet.db"
    engine = db.connect(f"sqlite:///{db_path}")
    db.upgrade(engine)
    engine.dispose()
    return str(db_path), str(sample), generated


def measure(tmp: Path, terminals: int = TERMINALS, merchants: int = MERCHANTS) -> dict[str, Any]:
    """Every step, in order, each in its own child: step → figures. Then the same import,
    flagging and reports on PostgreSQL (a fresh database, dropped after) under ``"pg"``."""
    db_path, sample, generated = prepare(tmp, terminals, merchants)
    out: dict[str, Any] = {"generate": {"s": generated}, "terminals": terminals}
    steps = ("import", "flag", "flag_sql", "report_fleet", "fleet_floor", "report_replacements")
    for step in (*steps, "reimport", "floor"):
        out[step] = child(step, db_path, sample)
    out["db_mib"] = Path(db_path).stat().st_size / 2**20
    try:
        with pg_database() as url:
            out["pg"] = {
                step: child(step, url, sample)
                for step in ("import", "flag", "report_fleet", "report_replacements", "reimport")
            }
    except PgUnavailableError as exc:
        out["pg"] = {"error": str(exc)}
    return out


class PgUnavailableError(RuntimeError):
    """No PostgreSQL server to measure on."""


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, migrated database on the local server (``POSFLEET_BENCH_PG``, default
    127.0.0.1:5432 as the tests use it), dropped afterwards: ``bench_<pid>``, or the name in
    ``POSFLEET_BENCH_PG_DB`` (a database of one's own on a shared server)."""
    base = os.environ.get("POSFLEET_BENCH_PG", "postgresql+psycopg://127.0.0.1:5432/test")
    name = os.environ.get("POSFLEET_BENCH_PG_DB") or f"bench_{os.getpid()}"
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise PgUnavailableError(str(exc.orig).strip().splitlines()[0]) from None
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        engine = db.connect(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _vs(value: float, target: float, unit: str) -> str:
    return f"(target {target:g} {unit}: {value / target:.2f}x)"


def report(m: dict[str, Any]) -> list[str]:
    n = m["terminals"]
    imp, again, fl, sql, floor = m["import"], m["reimport"], m["flag"], m["flag_sql"], m["floor"]
    t_import, t_flag, mem = TARGETS["import"], TARGETS["flag"], TARGETS["memory"]
    costs = ", ".join(f"{c} {v / 100:,.2f}" for c, v in sorted(fl["cost"].items()))
    verdict = (
        "meets"
        if imp["terminals_s"] <= t_import
        and fl["flag_s"] <= t_flag
        and max(imp["peak_mib"], fl["peak_mib"], again["peak_mib"]) <= mem
        else "MISSES"
    )
    return [
        f"## fleet at scale: {n:,} terminals, {m['import']['merchants']:,} merchants, SQLite "
        f"{sqlite3.sqlite_version}, {os.cpu_count()} CPUs",
        f"  generate sample files (not timed as import)   {m['generate']['s']:8.1f} s",
        f"  import {n:,} terminals: {imp['terminals_s']:.1f} s "
        f"{_vs(imp['terminals_s'], t_import, 's')}, {n / imp['terminals_s']:,.0f} rows/s",
        f"    catalog {imp['catalog_s']:.2f} s + merchants {imp['merchants_s']:.1f} s "
        f"+ terminals = {imp['total_s']:.1f} s in all; {imp['inserted']:,} new",
        f"    floor (sqlite3 executemany, no checks): {floor['floor_s']:.1f} s; "
        f"import is {imp['terminals_s'] / floor['floor_s']:.1f}x the floor",
        f"  re-import of the same file: {again['terminals_s']:.1f} s "
        f"{_vs(again['terminals_s'], t_import, 's')}; {again['inserted']:,} new, "
        f"{again['updated']:,} unchanged/updated",
        f"  flag replacements: {fl['flag_s']:.1f} s {_vs(fl['flag_s'], t_flag, 's')}; "
        f"{fl['flagged']:,} flagged, forecast {fl['units']:,} units, {costs}",
        f"    the query alone (raw sqlite3 rows): {sql['sql_s']:.1f} s = "
        f"{100 * sql['sql_s'] / fl['flag_s']:.0f} % of flag()",
        f"  peak RSS, import process: {imp['peak_mib']:.0f} MiB {_vs(imp['peak_mib'], mem, 'MiB')}",
        f"  peak RSS, re-import process: {again['peak_mib']:.0f} MiB "
        f"{_vs(again['peak_mib'], mem, 'MiB')}",
        f"  peak RSS, flagging process: {fl['peak_mib']:.0f} MiB {_vs(fl['peak_mib'], mem, 'MiB')}",
        f"  database file {m['db_mib']:.0f} MiB; all three targets: {verdict}",
        *_report_lines(m),
        *_pg_lines(m),
    ]


def _pg_lines(m: dict[str, Any]) -> list[str]:
    pg = m.get("pg", {})
    if "error" in pg:
        return [f"## PostgreSQL: not measured: {pg['error']}"]
    n = m["terminals"]
    imp, again, fl, rf, rr = (pg[k] for k in ("import", "reimport", "flag", "report_fleet",
                                              "report_replacements"))  # fmt: skip
    lite = m["import"]["terminals_s"], m["flag"]["flag_s"], m["report_fleet"]["total_s"]
    peak = max(imp["peak_mib"], again["peak_mib"], fl["peak_mib"], rf["peak_mib"], rr["peak_mib"])
    met = (
        imp["terminals_s"] <= TARGETS["import"]
        and fl["flag_s"] <= TARGETS["flag"]
        and rf["total_s"] <= TARGETS["report"]
        and peak <= TARGETS["memory"]
    )
    verdict = "meet" if met else "MISSED"
    return [
        "## the same on PostgreSQL (same run, same files; COPY imports, streamed reads)",
        f"  import {n:,} terminals: {imp['terminals_s']:.1f} s "
        f"{_vs(imp['terminals_s'], TARGETS['import'], 's')}, {n / imp['terminals_s']:,.0f} rows/s;"
        f" SQLite {lite[0]:.1f} s ({imp['terminals_s'] / lite[0]:.2f}x); merchants "
        f"{imp['merchants_s']:.1f} s",
        f"  re-import of the same file: {again['terminals_s']:.1f} s; {again['inserted']:,} new",
        f"  flag replacements: {fl['flag_s']:.1f} s {_vs(fl['flag_s'], TARGETS['flag'], 's')}; "
        f"{fl['flagged']:,} flagged; SQLite {lite[1]:.1f} s",
        f"  report fleet (HTML): {rf['total_s']:.2f} s "
        f"{_vs(rf['total_s'], TARGETS['report'], 's')} = queries "
        f"{rf['query_s']:.2f} s + page {rf['html_s']:.2f} s; SQLite {lite[2]:.2f} s",
        f"  report replacements CSV of all {rr['rows']:,}: {rr['csv_s']:.1f} s",
        f"  peak RSS of any PostgreSQL step: {peak:.0f} MiB {_vs(peak, TARGETS['memory'], 'MiB')}",
        f"  PostgreSQL, all four targets: {verdict}",
    ]


def _report_lines(m: dict[str, Any]) -> list[str]:
    rf, ff, rr, fl = m["report_fleet"], m["fleet_floor"], m["report_replacements"], m["flag"]
    return [
        f"  report fleet (HTML, {rf['bytes'] / 1024:.0f} KiB): {rf['total_s']:.2f} s = queries "
        f"{rf['query_s']:.2f} s + page and charts {rf['html_s']:.2f} s; the GROUP BYs on raw "
        f"sqlite3 {ff['floor_s']:.2f} s: queries {rf['query_s'] / ff['floor_s']:.2f}x the floor; "
        f"peak RSS {rf['peak_mib']:.0f} MiB",
        f"  report replacements, CSV of all {rr['rows']:,}: {rr['csv_s']:.1f} s = "
        f"{rr['csv_s'] / fl['flag_s']:.2f}x flagging alone; HTML (first 100, "
        f"{rr['bytes'] / 1024:.0f} KiB): {rr['html_s']:.1f} s; peak RSS {rr['peak_mib']:.0f} MiB "
        f"{_vs(rr['peak_mib'], TARGETS['memory'], 'MiB')}",
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
