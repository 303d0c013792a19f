"""Rollouts against real `possim` terminals: over TCP, over ptys behind a faulty line, the
failure threshold, and four PostgreSQL worker processes with one killed mid-run."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import ATTEMPTS, FEE_TABLES, JOBS, MERCHANTS, ROLLOUTS, TERMINALS
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.device import KeyRing
from fleet.fees import Group, publish
from fleet.inventory import set_links
from fleet.rollout import Worker, create, pause, resume, status
from fleet.sample.seed import write_possim_manifest
from protocols.mac import generate_master_key_file
from terminal_sim.state import StateStore

PY = sys.executable
POSSIM = [PY, "-m", "terminal_sim.cli"]
FAST = RolloutPolicy(backoff_s=0.1, lease_s=10, max_attempts=6)

TABLE = """name = "e2e"
currency = "CNY"
effective = 2026-01-01T00:00:00+08:00
[[rules]]
card = "credit"
mcc = ["5411", "5811-5814"]
rate = "0.60%"
min = "0.10"
max = "20.00"
[[rules]]
card = "any"
rate = "0.38%"
"""


@dataclass
class Served:
    serials: list[str]
    state: Path
    key: Path
    procs: list[subprocess.Popen[str]]


@pytest.fixture(autouse=True)
def _merchants_in_china(request: pytest.FixtureRequest) -> None:
    """The tables here are in CNY, which applies to merchants in China only
    (:mod:`fleet.fees.targets`): the sample's merchants are all put there, so that every
    served terminal is one a CNY table targets."""
    for name in ("loaded", "pg_loaded"):
        if name in request.fixturenames:
            found = request.getfixturevalue(name)
            engine = found[1] if isinstance(found, tuple) else found
            with engine.begin() as conn:
                conn.execute(update(MERCHANTS).values(country="CN"))


def _terminals(engine: Engine, n: int) -> list[tuple[str, str, str, str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                TERMINALS.c.serial,
                TERMINALS.c.model,
                TERMINALS.c.firmware,
                TERMINALS.c.tid,
                TERMINALS.c.mid,
                MERCHANTS.c.mcc,
            )
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed")
            .order_by(TERMINALS.c.serial)
            .limit(n)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _set_links(engine: Engine, links: dict[str, str]) -> None:
    set_links(engine, links, actor="test")


@contextmanager
def tcp_fleet(engine: Engine, tmp: Path, n: int, *extra: str) -> Iterator[Served]:
    manifest = tmp / "manifest.csv"
    write_possim_manifest(engine, manifest, n)
    key = tmp / "master.key"
    generate_master_key_file(key)
    proc = subprocess.Popen(
        [
            *POSSIM,
            "--log-level",
            "WARNING",
            "fleet",
            "--manifest",
            str(manifest),
            "--tcp",
            "127.0.0.1:0",
            "--key-file",
            str(key),
            "--state-dir",
            str(tmp / "state"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        links = {}
        for line in proc.stdout:
            words = line.split()
            if words == ["READY", "ALL"]:
                break
            links[words[1]] = words[2]
        _set_links(engine, links)
        yield Served(list(links), tmp / "state", key, [proc])
    finally:
        proc.terminate()
        proc.wait(20)


def _published(engine: Engine, tmp: Path, text: str = TABLE) -> int:
    path = tmp / "table.toml"
    path.write_text(text)
    return publish(engine, path, actor="t", policy=FeePolicy()).version


def _wire(engine: Engine) -> dict[int, bytes]:
    with engine.connect() as conn:
        return {r.version: r.wire for r in conn.execute(select(FEE_TABLES))}


def _check_terminal_tables(served: Served, wire: dict[int, bytes], version: int) -> None:
    """Every table a terminal holds is byte for byte a published one; V is there."""
    for serial in served.serials:
        store = StateStore(served.state / serial)
        try:
            held = store.tables()
        finally:
            store.close()
        assert held, serial
        for t in held:
            assert t.data == wire[t.version], f"{serial} holds a v{t.version} that differs"
        assert version in {t.version for t in held}, serial


def _worker(engine: Engine, key: Path, name: str = "w", policy: RolloutPolicy = FAST) -> Worker:
    return Worker(
        engine,
        keys=KeyRing.read([key]),
        fee_policy=FeePolicy(),
        policy=policy,
        actor="t",
        name=name,
        t1_margin=0.2,
        t2=2.0,
        poll=0.1,
    )


def test_rollout_over_tcp(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    with tcp_fleet(loaded, tmp_path, 10) as served:
        version = _published(loaded, tmp_path)
        rid, sizes = create(
            loaded,
            version,
            group=Group(),
            policy=FAST,
            actor="t",
            waves=(100_000, 500_000, 1_000_000),
        )
        assert sizes == [1, 4, 5]
        assert _worker(loaded, served.key).run(rid, threads=3) == "done"
        with loaded.connect() as conn:
            jobs = conn.execute(select(JOBS).where(JOBS.c.rollout_id == rid)).all()
            rows = conn.execute(
                select(
                    TERMINALS.c.serial, TERMINALS.c.pending_version, TERMINALS.c.active_version
                ).where(TERMINALS.c.serial.in_(served.serials))
            ).all()
        assert {j.status for j in jobs} == {"done"}
        last_of = defaultdict(list)
        for j in jobs:
            last_of[j.wave].append(j.finished_at)
        for wave in (1, 2):
            assert max(last_of[wave - 1]) <= min(last_of[wave]), "a wave finished early"
        assert all(version in (r.pending_version, r.active_version) for r in rows)
        _check_terminal_tables(served, _wire(loaded), version)
        # again: every terminal already has it
        res = CliRunner().invoke(
            app,
            [
                "--db",
                db_url,
                "push",
                "--table",
                str(version),
                "--group",
                "all",
                "--key-file",
                str(served.key),
                "--format",
                "json",
            ],
        )
        assert res.exit_code == 0, res.output
        assert {d["outcome"] for d in json.loads(res.stdout)} == {"already"}


@pytest.mark.slow
def test_rollout_over_ptys_behind_faulty_lines(loaded: Engine, tmp_path: Path) -> None:
    rows = _terminals(loaded, 3)
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    procs: list[subprocess.Popen[str]] = []
    links = {}
    faults = [
        ["--drop", "0.05", "--corrupt", "0.03"],
        ["--drop", "0.08"],
        ["--corrupt", "0.05", "--cut-after", "1.2s", "--cut-for", "1.5s"],
    ]
    try:
        for i, (serial, model, fw, tid, mid, mcc) in enumerate(rows):
            term = subprocess.Popen(
                [
                    *POSSIM,
                    "serve",
                    "--serial",
                    serial,
                    "--tid",
                    tid,
                    "--mid",
                    mid,
                    "--model",
                    model,
                    "--firmware",
                    fw,
                    "--mcc",
                    str(mcc),
                    "--key-file",
                    str(key),
                    "--state-dir",
                    str(tmp_path / "state" / serial),
                    "--port",
                    "pty",
                    "--baud",
                    "115200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(term)
            assert term.stdout is not None
            pty = term.stdout.readline().split()[1]
            line = subprocess.Popen(
                [*POSSIM, "line", pty, "pty", "--baud", "115200", "--seed", str(7 + i), *faults[i]],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            procs.append(line)
            assert line.stdout is not None
            links[serial] = line.stdout.readline().split()[2]
        _set_links(loaded, links)
        head, fallback = TABLE.split('[[rules]]\ncard = "any"')
        debit = "".join(
            f'[[rules]]\ncard = "debit"\nmcc = "{1000 + i}"\nrate = "0.{10 + i % 80}%"\n'
            for i in range(150)
        )  # ~3.2 KiB: 4 blocks, so the cut lands mid-download
        version = _published(loaded, tmp_path, head + debit + '[[rules]]\ncard = "any"' + fallback)
        rid, _ = create(
            loaded,
            version,
            group=Group(),
            policy=FAST,
            actor="t",
            waves=(1_000_000,),
            max_failure_ppm=1_000_000,
        )
        assert _worker(loaded, key).run(rid, threads=3) == "done"
        with loaded.connect() as conn:
            attempts = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.version == version)).all()
        assert {a.serial for a in attempts if a.outcome in ("pushed", "already")} == set(links)
        served = Served(list(links), tmp_path / "state", key, procs)
        _check_terminal_tables(served, _wire(loaded), version)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)


def test_failure_threshold_halts_and_controls(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    with tcp_fleet(loaded, tmp_path, 4) as served:
        dead = _terminals(loaded, 20)[4:]
        _set_links(loaded, {row[0]: "socket://127.0.0.1:9" for row in dead})
        version = _published(loaded, tmp_path)
        policy = RolloutPolicy(backoff_s=0.05, lease_s=10, max_attempts=2)
        rid, sizes = create(
            loaded,
            version,
            group=Group(),
            policy=policy,
            actor="t",
            waves=(500_000, 1_000_000),
            max_failure_ppm=50_000,
        )
        assert sum(sizes) == 20
        assert _worker(loaded, served.key, policy=policy).run(rid, threads=4) == "halted"
        info = status(loaded, rid)
        assert info.status == "halted"
        assert info.waves[1].counts.get("pending", 0) == sizes[1], "a later wave started"
        with loaded.connect() as conn:
            errors = (
                conn.execute(select(ATTEMPTS.c.error).where(ATTEMPTS.c.outcome == "error"))
                .scalars()
                .all()
            )
        assert errors and all("127.0.0.1:9" in e for e in errors)
        assert all(p.last_error for p in info.problems)
        runner = CliRunner()
        res = runner.invoke(
            app, ["--db", db_url, "rollout", "status", str(rid), "--format", "json"]
        )
        assert json.loads(res.stdout)["status"] == "halted"
        resume(loaded, rid, actor="t", reason="fixed the router")
        pause(loaded, rid, actor="t")
        assert _worker(loaded, served.key, policy=policy).run(rid, threads=2) == "paused"
        res = runner.invoke(
            app, ["--db", db_url, "rollout", "cancel", str(rid), "--reason", "wrong table"]
        )
        assert res.exit_code == 0, res.output
        with loaded.connect() as conn:
            left = (
                conn.execute(select(JOBS.c.status).where(JOBS.c.rollout_id == rid)).scalars().all()
            )
            state = conn.execute(select(ROLLOUTS.c.status).where(ROLLOUTS.c.id == rid)).scalar()
        assert state == "cancelled" and "pending" not in left and "cancelled" in left
        res = runner.invoke(app, ["--db", db_url, "rollout", "resume", str(rid)])
        assert res.exit_code == 1 and "cancelled" in res.output
        cancel_again = runner.invoke(app, ["--db", db_url, "rollout", "cancel", "999"])
        assert cancel_again.exit_code == 2 and "no rollout 999" in cancel_again.output
        with pytest.raises(Exception, match="not published"):
            create(loaded, 99, group=Group(), policy=policy, actor="t")


def test_push_cli(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    with tcp_fleet(loaded, tmp_path, 2) as served:
        version = _published(loaded, tmp_path)
        runner = CliRunner()
        base = ["--db", db_url, "push", "--key-file", str(served.key)]
        res = runner.invoke(app, [*base, "--table", str(version), "--terminal", served.serials[0]])
        assert res.exit_code == 0, res.output
        assert "1 of 1 terminals at v" in res.stdout
        res = runner.invoke(app, [*base, "--table", "42", "--terminal", served.serials[0]])
        assert res.exit_code == 2 and "fee table 42 is not published" in res.output
        assert runner.invoke(app, [*base, "--table", str(version)]).exit_code == 2
        res = runner.invoke(
            app,
            [
                *base,
                "--table",
                str(version),
                "--terminal",
                served.serials[1],
                "--port",
                "socket://127.0.0.1:9",
                "--retries",
                "0",
            ],
        )
        assert res.exit_code == 1 and "127.0.0.1:9" in res.output
        wrong = tmp_path / "wrong.key"
        generate_master_key_file(wrong)
        res = runner.invoke(
            app,
            [
                "--db",
                db_url,
                "push",
                "--key-file",
                str(wrong),
                "--table",
                str(version),
                "--terminal",
                served.serials[1],
            ],
        )
        assert res.exit_code == 1 and "A0" in res.output


def test_four_postgres_workers_one_killed(pg_loaded: tuple[str, Engine], tmp_path: Path) -> None:
    db_url, loaded = pg_loaded
    with tcp_fleet(loaded, tmp_path, 40) as served:
        version = _published(loaded, tmp_path)
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text('[rollout]\nlease = "3s"\nbackoff = "0.2s"\n')
        rid, _ = create(
            loaded, version, group=Group(), policy=FAST, actor="t", waves=(100_000, 1_000_000)
        )
        workers = [
            subprocess.Popen(
                [
                    PY,
                    "-c",
                    "from fleet.cli import main; main()",
                    "--db",
                    db_url,
                    "--policy",
                    str(policy_file),
                    "rollout",
                    "run",
                    str(rid),
                    "--key-file",
                    str(served.key),
                    "--workers",
                    "2",
                    "--quiet",
                    "--name",
                    f"w{i}",
                    "--t1-margin",
                    "0.2",
                ],
                stdout=(tmp_path / f"w{i}.out").open("w"),
                stderr=(tmp_path / f"w{i}.err").open("w"),
            )
            for i in range(4)
        ]
        try:
            victim = workers[0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with loaded.connect() as conn:
                    held = conn.execute(
                        select(JOBS.c.id).where(
                            JOBS.c.rollout_id == rid,
                            JOBS.c.status == "running",
                            JOBS.c.lease_owner.like("w0/%"),
                        )
                    ).first()
                if held:
                    break
                time.sleep(0.02)
            assert held, "worker w0 never claimed a job"
            victim.send_signal(signal.SIGKILL)
            for i, w in enumerate(workers[1:], 1):
                try:
                    code = w.wait(60)
                except subprocess.TimeoutExpired:
                    info = status(loaded, rid)
                    logs = {n: (tmp_path / f"w{n}.err").read_text()[-2000:] for n in range(4)}
                    pytest.fail(f"worker w{i} still running: {info} {logs}")
                assert code == 0, (tmp_path / f"w{i}.err").read_text()[-2000:]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                w.wait()
        with loaded.connect() as conn:
            jobs = conn.execute(select(JOBS).where(JOBS.c.rollout_id == rid)).all()
            attempts = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.version == version)).all()
            final = conn.execute(select(ROLLOUTS.c.status).where(ROLLOUTS.c.id == rid)).scalar()
        assert final == "done" and {j.status for j in jobs} == {"done"}
        taken = next(j for j in jobs if j.id == held.id)
        assert not taken.lease_owner.startswith("w0/"), "the killed worker's job was not taken over"
        assert taken.attempts >= 2
        by_serial: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
        for a in attempts:
            by_serial[a.serial].append((a.started_at, a.finished_at, a.worker))
        for serial, spans in by_serial.items():
            spans.sort()
            for (_s1, e1, w1), (s2, _e2, w2) in itertools.pairwise(spans):
                assert not (w1 != w2 and s2 < e1), f"{serial} pushed by {w1} and {w2} at once"
        _check_terminal_tables(served, _wire(loaded), version)
