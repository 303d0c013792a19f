"""`make soak`: a rollout and a notices run on PostgreSQL while a chaos driver kills things.

What runs (issue 18), in a fresh database ``soak_<pid>`` on 127.0.0.1:5432 (dropped at the
end unless ``--keep``):

* an 8 KiB fee table rolled out to ``--terminals`` (1,000) terminals in waves 1 %, 10 %,
  100 %, by ``--workers`` (4) ``posfleet rollout run`` processes;
* the terminals split over ``--fleets`` (4) ``possim fleet`` processes, each on fixed
  ports (a restarted one answers where it did), 5 % frame loss and 1 % corruption on
  every link (``--drop 0.05 --corrupt 0.01``);
* 10,000 e-mail notices dispatched through aiosmtpd (``tests.fleet.smtp_sink``) by
  ``posfleet notices dispatch --connections 4``;
* a chaos driver: SIGKILLs random workers and random ``possim fleet`` processes and
  restarts them, kills the dispatcher twice (restarting it), and once "restarts the
  database": every backend of the soak database is terminated with
  ``pg_terminate_backend`` (the shared server itself is never restarted: other work uses
  it). A process that exits because its database connection died is restarted too.

At the end it checks and prints: every terminal's active and pending tables byte-equal to
the published ones and the new version held; no half-active table (each stored table's
bytes match its digest); every job done, with exactly one successful attempt; never two
workers on one terminal at once (attempt spans); every notice composed and its message
sent (a notice the content check refuses at compose is listed with its reason), each
Message-ID received once, repeats only within the documented window (one message per SMTP
connection per kill) and counted; the kills and restarts done. Every loop is bounded in
count and time (``--max-seconds``). Exit 0 when every check passes.

``python scripts/soak.py --terminals 200 --notices 2000`` is a quick run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, make_url, select, text, update  # noqa: E402

from bench.rollout_fleet import fee_toml  # noqa: E402
from fleet.core import db  # noqa: E402
from fleet.core.models import ATTEMPTS, FEE_TABLES, JOBS, MERCHANTS, MESSAGES, NOTICES  # noqa: E402
from fleet.core.policy import FeePolicy, RolloutPolicy  # noqa: E402
from fleet.fees import Group, publish  # noqa: E402
from fleet.inventory import (  # noqa: E402
    import_catalog,
    import_merchants,
    import_terminals,
    set_links,
)
from fleet.rollout import create  # noqa: E402
from fleet.sample.seed import write_possim_manifest, write_sample  # noqa: E402
from protocols.mac import generate_master_key_file  # noqa: E402
from terminal_sim.state import StateStore  # noqa: E402

BIN = Path(sys.executable).parent
PG = os.environ.get("POSFLEET_SOAK_PG", "postgresql+psycopg://127.0.0.1:5432/test")
CONNECTIONS = 4


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_base(count: int) -> int:
    """A first port such that ``count`` consecutive ports are free now, below the
    kernel's ephemeral range (a worker's outgoing connection could otherwise hold the port
    of a killed ``possim fleet`` and keep it from coming back)."""
    low = 32_768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(10_000, max(10_001, low - count))
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Proc:
    """A supervised child: started, killed, restarted; its exits counted."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, ready: str | None = None):
        self.name, self.argv, self.log_dir, self.ready = name, argv, log_dir, ready
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self.kills = 0
        self.crashes: list[int] = []

    def start(self) -> None:
        self.starts += 1
        out = (self.log_dir / f"{self.name}.{self.starts}.out").open("w")
        err = (self.log_dir / f"{self.name}.{self.starts}.err").open("w")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE if self.ready else out, stderr=err, text=True
        )
        if self.ready:
            assert self.proc.stdout is not None
            deadline = time.monotonic() + 120
            for line in self.proc.stdout:
                if line.strip() == self.ready or time.monotonic() > deadline:
                    break
            # keep the pipe drained: nothing more is printed after READY ALL

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_database() -> tuple[str, Any]:
    name = f"soak_{os.getpid()}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG).set(database=name).render_as_string(hide_password=False)
    return url, admin


def seed_notices(engine: Any, count: int) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    merchants = [
        {"id": f"N{i:014d}", "name": f"Soak Merchant {i}", "mcc": 5411,
         "phone": f"+3538{i:08d}", "email": f"m{i}@soak.example", "language": "en",
         "timezone": "Europe/Dublin", "tags": [], "channels": ["email"], "opt_out": []}
        for i in range(count)
    ]  # fmt: skip
    payload = {
        "version": 2, "old_version": 1, "effective": "2027-03-01T00:00:00+08:00",
        "currency": "EUR", "basket_old": 312, "basket_new": 348, "direction": "up",
        "reason": "Annual scheme fee review", "sales": 4, "basket_total": 46_500,
    }  # fmt: skip
    with db.writer(engine).begin() as conn:
        for start in range(0, count, 5000):
            conn.execute(insert(MERCHANTS), merchants[start : start + 5000])
            conn.execute(
                insert(NOTICES),
                [{"kind": "fee_change", "merchant_id": m["id"], "ref": "fee:soak",
                  "payload": payload, "created_at": at, "status": "queued"}
                 for m in merchants[start : start + 5000]],
            )  # fmt: skip


def terminate_backends(admin: Any, name: str) -> int:
    with admin.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": name},
            ).all()
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--terminals", type=int, default=1000)
    ap.add_argument("--fleets", type=int, default=4)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--notices", type=int, default=10_000)
    ap.add_argument("--max-seconds", type=float, default=1500)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the database and the files")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    deadline = t_start + args.max_seconds
    url, admin = make_database()
    dbname = make_url(url).database
    tmpdir = tempfile.mkdtemp(prefix="posfleet-soak-")
    tmp = Path(tmpdir)
    logs = tmp / "logs"
    logs.mkdir()
    log(f"database {dbname}, files in {tmp}")
    procs: list[Proc] = []
    failures: list[str] = []
    try:
        engine = db.connect(url)
        db.upgrade(engine)
        n = args.terminals
        sample = write_sample(
            tmp / "sample", terminals=int(n * 1.15) + 20, merchants=max(1, n // 3)
        )
        import_catalog(engine, sample.catalog, actor="soak")
        import_merchants(engine, sample.merchants, actor="soak")
        import_terminals(engine, sample.terminals, actor="soak")
        with engine.begin() as conn:
            conn.execute(update(MERCHANTS).values(country="CN", channels=[], email=None))
        seed_notices(engine, args.notices)
        key = tmp / "master.key"
        generate_master_key_file(key)
        manifest = tmp / "manifest.csv"
        serials = write_possim_manifest(engine, manifest, n)
        lines = manifest.read_text().splitlines()
        header, rows = lines[0], lines[1:]
        per = -(-len(rows) // args.fleets)
        fleets: list[Proc] = []
        links: dict[str, str] = {}
        state_dirs: dict[str, Path] = {}
        for i in range(args.fleets):
            part = rows[i * per : (i + 1) * per]
            if not part:
                continue
            mf = tmp / f"manifest{i}.csv"
            mf.write_text("\n".join([header, *part]) + "\n")
            base = free_base(len(part))
            state = tmp / f"state{i}"
            for j, row in enumerate(part):
                links[row.split(",")[0]] = f"socket://127.0.0.1:{base + j}"
                state_dirs[row.split(",")[0]] = state / row.split(",")[0]
            p = Proc(
                f"possim{i}",
                [str(BIN / "possim"), "--log-level", "WARNING", "fleet", "--manifest", str(mf),
                 "--tcp", f"127.0.0.1:{base}", "--key-file", str(key), "--state-dir", str(state),
                 "--drop", "0.05", "--corrupt", "0.01", "--seed", str(rng.randrange(1 << 30))],
                logs, ready="READY ALL",
            )  # fmt: skip
            p.start()
            fleets.append(p)
        procs += fleets
        set_links(engine, links, actor="soak")
        table = tmp / "table.toml"
        table.write_text(fee_toml(version_note="soak"))
        plan = publish(engine, table, actor="soak", policy=FeePolicy())
        policy_file = tmp / "policy.toml"
        policy_file.write_text(
            '[rollout]\nlease = "6s"\nbackoff = "0.5s"\nmax_attempts = 30\n'
            '[notices]\nquiet_hours = "00:00-00:00"\ndigest_window = "0m"\n'
        )
        policy = RolloutPolicy(backoff_s=0.5, lease_s=6, max_attempts=30)
        rid, sizes = create(engine, plan.version, group=Group(), policy=policy, actor="soak",
                            waves=(10_000, 100_000, 1_000_000),
                            max_failure_ppm=1_000_000)  # fmt: skip
        log(f"rollout {rid} of v{plan.version} to {sum(sizes)} terminals in waves {sizes}; "
            f"{len(fleets)} possim fleet processes; {args.notices:,} notices")  # fmt: skip
        posfleet = [str(BIN / "posfleet"), "--db", url, "--policy", str(policy_file)]
        gen = itertools.count(1)

        def worker(i: int) -> Proc:
            return Proc(
                f"worker{i}",
                [*posfleet, "rollout", "run", str(rid), "--key-file", str(key), "--workers",
                 "64", "--quiet", "--name", f"w{i}.{next(gen)}"],
                logs,
            )  # fmt: skip

        workers = [worker(i) for i in range(args.workers)]
        for w in workers:
            w.start()
        procs += workers
        sink_port = free_base(1)
        sink_out = tmp / "received.txt"
        sink = Proc(
            "smtp", [sys.executable, "-m", "tests.fleet.smtp_sink", str(sink_port), str(sink_out)],
            logs, ready="READY",
        )  # fmt: skip
        sink.start()
        procs.append(sink)
        dispatch_argv = [*posfleet, "notices", "dispatch", "--smtp",
                         f"smtp://127.0.0.1:{sink_port}", "--outbox", str(tmp / "outbox"),
                         "--connections", str(CONNECTIONS), "--lease", "5", "--batch", "200",
                         "--format", "json"]  # fmt: skip
        dispatcher = Proc("dispatch", dispatch_argv, logs)
        dispatcher.start()
        procs.append(dispatcher)

        # -- chaos ------------------------------------------------------------------------
        kills = defaultdict(int)
        restarts_after_exit = defaultdict(int)
        db_restarted = 0
        dispatcher_kills = 0

        def progress() -> tuple[int, int, int, str]:
            with engine.connect() as conn:
                jobs_done = conn.execute(
                    select(func.count()).where(JOBS.c.rollout_id == rid, JOBS.c.status == "done")
                ).scalar_one()
                ours = MESSAGES.c.merchant_id.like("N%")
                sent = conn.execute(
                    select(func.count()).where(MESSAGES.c.status == "sent", ours)
                ).scalar_one()
                # what is left to do: notices not yet composed, messages not yet sent (a
                # notice may also fail at compose, e.g. the content check: not pending)
                left = (
                    conn.execute(
                        select(func.count()).where(
                            NOTICES.c.merchant_id.like("N%"),
                            NOTICES.c.status.not_in(("sent", "failed", "cancelled")),
                        )
                    ).scalar_one()
                    + conn.execute(
                        select(func.count()).where(ours, MESSAGES.c.status != "sent")
                    ).scalar_one()
                )
                state = conn.execute(text("SELECT status FROM rollout WHERE id = :r"),
                                     {"r": rid}).scalar_one()  # fmt: skip
            return jobs_done, sent, left, state

        total_jobs = sum(sizes)
        next_chaos = time.monotonic() + rng.uniform(3, 6)
        last_log = 0.0
        rollout_over = False
        for _turn in range(100_000):  # bounded: ~0.5 s a turn
            if time.monotonic() > deadline:
                failures.append(f"time limit of {args.max_seconds:.0f} s reached")
                break
            try:
                jobs_done, sent, left, state = progress()
            except Exception as exc:  # the database restart: try again next turn
                log(f"progress query failed ({type(exc).__name__}); retrying")
                engine.dispose()
                time.sleep(1)
                continue
            if time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                log(f"rollout {state}: {jobs_done}/{total_jobs} done; notices sent "
                    f"{sent}/{args.notices}")  # fmt: skip
            rollout_over = state in ("done", "halted", "cancelled")
            dispatcher_done = (
                not dispatcher.alive()
                and dispatcher.proc is not None
                and (dispatcher.proc.returncode == 0 and left == 0)
            )
            if rollout_over and dispatcher_done:
                break
            # supervise: whatever exited on its own (a dead database connection) restarts
            for p in [*workers, dispatcher, *fleets]:
                if p.proc is not None and p.proc.poll() is not None:
                    code = p.proc.returncode
                    if p in workers and rollout_over and code == 0:
                        continue
                    if p is dispatcher and code == 0 and left == 0:
                        continue
                    p.crashes.append(code)
                    restarts_after_exit[p.name] += 1
                    if p in workers:
                        i = workers.index(p)
                        fresh = worker(i)
                        fresh.starts, fresh.kills, fresh.crashes = p.starts, p.kills, p.crashes
                        workers[i] = fresh
                        procs.append(fresh)
                        fresh.start()
                    else:
                        p.start()
            if (
                dispatcher_kills < 2
                and dispatcher.alive()
                and sent > args.notices * (dispatcher_kills + 1) / 4
            ):
                dispatcher.kill()
                dispatcher_kills += 1
                log(f"CHAOS dispatcher SIGKILLed ({sent} sent); restarting")
                time.sleep(0.5)
                dispatcher.start()
            now_m = time.monotonic()
            if now_m >= next_chaos and not rollout_over:
                next_chaos = now_m + rng.uniform(3, 7)
                share = jobs_done / max(total_jobs, 1)
                if db_restarted == 0 and share > 0.3:
                    killed = terminate_backends(admin, dbname)
                    db_restarted += 1
                    log(f"CHAOS database restart: {killed} backends of {dbname} terminated")
                elif rng.random() < 0.5:
                    i = rng.randrange(len(workers))
                    workers[i].kill()
                    kills["worker"] += 1
                    log(f"CHAOS worker {i} SIGKILLed; restarting")
                    time.sleep(0.5)
                    fresh = worker(i)
                    fresh.starts, fresh.kills, fresh.crashes = (workers[i].starts,
                                                                workers[i].kills,
                                                                workers[i].crashes)  # fmt: skip
                    workers[i] = fresh
                    procs.append(fresh)
                    fresh.start()
                else:
                    f = rng.choice(fleets)
                    f.kill()
                    kills["possim"] += 1
                    log(f"CHAOS {f.name} SIGKILLed; restarting on the same ports")
                    time.sleep(0.5)
                    f.start()
            time.sleep(0.5)
        # the dispatcher may still be finishing: a bounded wait
        for _ in range(240):
            if not dispatcher.alive():
                break
            time.sleep(0.5)
        while dispatcher_kills < 2 and time.monotonic() < deadline:  # kills owed, done late
            dispatcher.start()
            time.sleep(0.3)
            dispatcher.kill()
            dispatcher_kills += 1
        if dispatcher.proc is None or dispatcher.proc.poll() is not None:
            dispatcher.start()  # a last run: anything left over is sent
        if dispatcher.proc is not None:
            try:
                dispatcher.proc.wait(max(10.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                failures.append("the last dispatcher did not finish in time")
        for w in workers:
            if w.proc is not None:
                try:
                    w.proc.wait(60)
                except subprocess.TimeoutExpired:
                    failures.append(f"{w.name} still running after the rollout")
        sink.stop()
        for f in fleets:
            f.stop()
        elapsed = time.monotonic() - t_start

        # -- checks ----------------------------------------------------------------------
        engine.dispose()
        with engine.connect() as conn:
            wire = {r.version: bytes(r.wire) for r in conn.execute(select(FEE_TABLES))}
            jobs = conn.execute(select(JOBS).where(JOBS.c.rollout_id == rid)).all()
            attempts = conn.execute(
                select(ATTEMPTS).where(ATTEMPTS.c.version == plan.version)
            ).all()
            state = conn.execute(text("SELECT status FROM rollout WHERE id = :r"),
                                 {"r": rid}).scalar_one()  # fmt: skip
            # the soak's own notices (publishing may queue fee-change notices for the
            # sample's merchants too: not counted)
            messages = conn.execute(select(MESSAGES).where(MESSAGES.c.merchant_id.like("N%"))).all()
        checks: list[tuple[str, bool, str]] = []
        # tables on the terminals
        bad_tables, missing, half = [], [], []
        for serial in serials:
            store = StateStore(state_dirs[serial])
            try:
                held = store.tables()
            finally:
                store.close()
            for t in held:
                if hashlib.sha256(t.data).digest() != t.sha256:
                    half.append(serial)
                if wire.get(t.version) != t.data:
                    bad_tables.append(serial)
            if plan.version not in {t.version for t in held}:
                missing.append(serial)
        checks.append(
            (
                "every terminal's active/pending table byte-equal to the published one",
                not bad_tables,
                f"{len(serials)} terminals, {len(bad_tables)} differ",
            )
        )
        checks.append((f"every terminal holds v{plan.version}", not missing,
                       f"{len(missing)} without it"))  # fmt: skip
        checks.append(("no half-active table (bytes match the stored digest)", not half,
                       f"{len(half)} bad"))  # fmt: skip
        # jobs
        ok_by_job: dict[int, int] = defaultdict(int)
        for a in attempts:
            if a.outcome in ("pushed", "already") and a.job_id is not None:
                ok_by_job[a.job_id] += 1
        not_done = [j.id for j in jobs if j.status != "done"]
        twice = [j for j, c in ok_by_job.items() if c != 1]
        never = [j.id for j in jobs if ok_by_job.get(j.id, 0) == 0]
        checks.append(
            (
                f"rollout done, every job done ({state})",
                state == "done" and not not_done,
                f"{len(jobs) - len(not_done)}/{len(jobs)}",
            )
        )
        checks.append(
            (
                "every job done exactly once (one successful attempt each)",
                not twice and not never,
                f"{len(twice)} with several, {len(never)} with none; "
                f"{sum(1 for a in attempts if a.outcome == 'error')} failed attempts "
                f"retried; max attempts of a job {max((j.attempts for j in jobs), default=0)}",
            )
        )
        overlaps = 0
        spans: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
        for a in attempts:
            spans[a.serial].append((a.started_at, a.finished_at, a.worker.split("/")[0]))
        for serial_spans in spans.values():
            serial_spans.sort()
            for (_s1, e1, w1), (s2, _e2, w2) in itertools.pairwise(serial_spans):
                if w1 != w2 and s2 < e1:
                    overlaps += 1
        checks.append(("never two workers on one terminal at once", overlaps == 0,
                       f"{overlaps} overlapping attempt spans"))  # fmt: skip
        # notices
        received = (
            [ln for ln in sink_out.read_text().splitlines() if ln] if sink_out.exists() else []
        )
        emails = {m.provider_ref: m for m in messages if m.channel == "email"}
        ours = set(emails)
        received = [r for r in received if r in ours or not r]  # the soak's notices only
        sent_msgs = [m for m in messages if m.status == "sent"]
        repeats = len(received) - len(set(received))
        window = CONNECTIONS * (
            dispatcher_kills + db_restarted + sum(1 for c in dispatcher.crashes if c != 0)
        )
        seen = Counter(received)
        repeated_ok = all(emails[mid].attempts > 1 for mid, k in seen.items() if k > 1)
        with engine.connect() as conn:
            notice_states = dict(
                conn.execute(
                    select(NOTICES.c.status, func.count())
                    .where(NOTICES.c.merchant_id.like("N%"))
                    .group_by(NOTICES.c.status)
                ).all()
            )
            refused_rows = conn.execute(
                select(NOTICES.c.merchant_id, NOTICES.c.note).where(
                    NOTICES.c.merchant_id.like("N%"), NOTICES.c.status == "failed"
                )
            ).all()
        refused = [r.note for r in refused_rows]
        with_message = {m.merchant_id for m in messages}
        refused_merchants = {r.merchant_id for r in refused_rows} - with_message
        checks.append(
            (
                f"every notice sent ({len(sent_msgs):,} of {len(messages):,} messages sent)",
                len(sent_msgs) == len(messages)
                and set(notice_states) <= {"sent", "failed"}
                and len(with_message) + len(refused_merchants) == args.notices,
                f"notices by status {notice_states}"
                + (f"; refused at compose: {sorted(set(refused))}" if refused else ""),
            )
        )
        checks.append(
            (
                "every Message-ID received, once, repeats only within the window",
                set(received) == set(emails) and repeats <= window and repeated_ok,
                f"received {len(received):,}, distinct {len(set(received)):,}; "
                f"repeats {repeats} (window {window}: {CONNECTIONS} per kill)",
            )
        )
        survived = (kills["worker"] >= 1 and kills["possim"] >= 1 and dispatcher_kills >= 2
                    and db_restarted == 1)  # fmt: skip
        crashes = {p.name: p.crashes for p in procs if p.crashes}
        checks.append(
            (
                "kills and restarts survived",
                survived,
                f"workers SIGKILLed {kills['worker']}, possim fleets {kills['possim']}, "
                f"dispatcher {dispatcher_kills}, database restarts {db_restarted} "
                f"(pg_terminate_backend); exits after them, restarted: "
                f"{dict(restarts_after_exit)}",
            )
        )
        print()
        print(
            f"soak: {n:,} terminals over {len(fleets)} possim fleet processes (5 % drop, 1 % "
            f"corrupt), {args.workers} workers, {args.notices:,} notices; {elapsed:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for name, ok, detail in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {name}" + (f": {detail}" if detail else ""))
        if crashes:
            print(f"  exit codes seen: {crashes}")
        for f in failures:
            print(f"  FAIL  {f}")
        return 0 if all(ok for _, ok, _ in checks) and not failures else 1
    finally:
        for p in procs:
            p.stop()
        if not args.keep:
            terminate_backends(admin, dbname or "")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            import shutil  # noqa: PLC0415

            shutil.rmtree(tmp, ignore_errors=True)
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
