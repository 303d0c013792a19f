"""Key rollouts against real `possim` terminals, through the command line: over TCP with two
worker processes (one SIGKILLed after some terminals changed, its job taken over), fee-table
pushes over a half-rotated fleet, a terminal on a key the fleet never issued; over a pty
behind a slow line, a worker SIGKILLed between a terminal's key change and its
confirmation. Afterwards every terminal holds exactly one key, the new one, and refuses the
old one (A0); no master or terminal key is in the database, the audit log, a report or
anything a command printed."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core import db
from fleet.core.models import ATTEMPTS, JOBS, ROLLOUTS, TERMINALS, metadata
from fleet.inventory import import_catalog, import_merchants, import_terminals
from fleet.rollout import pause
from fleet.sample.seed import SampleFiles
from protocols import messages as m
from protocols.codec import decode, encode
from protocols.link import Link
from protocols.mac import MasterKey, TerminalKey, read_master_key
from protocols.session import HostSession
from terminal_sim.state import StateStore
from tests.fleet.rollout.test_rollout_e2e import (
    POSSIM,
    PY,
    _check_terminal_tables,
    _merchants_in_china,  # noqa: F401 - the autouse fixture: CNY tables target every terminal
    _published,
    _terminals,
    _wire,
    tcp_fleet,
)

pytestmark = pytest.mark.slow  # handed out first under xdist (tests/conftest.py)

runner = CliRunner()


@pytest.fixture
def lite(tmp_path: Path, sample: SampleFiles) -> Iterator[tuple[str, Engine]]:
    """SQLite only (one machine is the case here): URL and the loaded sample fleet."""
    url = f"sqlite:///{tmp_path / 'lite.db'}"
    engine = db.connect(url)
    db.upgrade(engine)
    import_catalog(engine, sample.catalog, actor="test")
    import_merchants(engine, sample.merchants, actor="test")
    import_terminals(engine, sample.terminals, actor="test")
    yield url, engine
    engine.dispose()


class Cli:
    """``posfleet`` in-process on one database; keeps everything it printed."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.printed: list[str] = []

    def __call__(self, *args: Any, code: int = 0) -> Any:
        res = runner.invoke(app, ["--db", self.db_url, *map(str, args)])
        self.printed.append(res.output)
        assert res.exit_code == code, res.output
        return res


def _flat(text: str) -> str:
    """Output as one line (Rich wraps long lines at the terminal's width)."""
    return " ".join(text.split())


def _worker(
    tmp: Path, db_url: str, rid: int, keys: Iterable[Path], name: str, *extra: str
) -> subprocess.Popen[bytes]:
    policy = tmp / "policy.toml"
    policy.write_text('[rollout]\nlease = "3s"\nbackoff = "0.2s"\n')
    key_args = [a for k in keys for a in ("--key-file", str(k))]
    return subprocess.Popen(
        [PY, "-c", "from fleet.cli import main; main()", "--db", db_url, "--policy", str(policy),
         "rollout", "run", str(rid), *key_args, "--quiet", "--name", name, *extra],
        stdout=(tmp / f"{name}.out").open("w"), stderr=(tmp / f"{name}.err").open("w"),
    )  # fmt: skip


def _until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def _jobs(engine: Engine, rid: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(JOBS).where(JOBS.c.rollout_id == rid)))


def _probe(link: Link, tid: str, key: TerminalKey) -> str:
    """A signed block of version 0 (refused 76 with nothing stored) under ``key``: ``76``
    when the terminal accepts the key, ``A0`` when it does not."""
    request = m.sign(m.block(m.StanCounter(424242).next(), tid, 0, 0, 1, b"probe"), key.key)
    response = decode(link.request(encode(request)))
    return str(response[39])


def _one_key_left(
    states: dict[str, Path], engine: Engine, old: MasterKey, new: MasterKey, baud: int = 115200
) -> None:
    """Every terminal (serial → its state directory): its state holds exactly the new key;
    it refuses the old one (A0) and accepts the new one; the database says so."""
    with engine.connect() as conn:
        rows = {
            r.serial: r
            for r in conn.execute(select(TERMINALS).where(TERMINALS.c.serial.in_(list(states))))
        }
    for serial, state in states.items():
        store = StateStore(state)
        try:
            held = store.mac_keys()
        finally:
            store.close()
        assert held == {"current": (new.version, new.terminal_key(serial).key)}, serial
        row = rows[serial]
        assert (row.key_version, row.key_next) == (new.version, 0), serial
        with Link(row.link, baud, t2=5.0) as link:
            assert _probe(link, row.tid, old.terminal_key(serial)) == "A0", serial
            assert _probe(link, row.tid, new.terminal_key(serial)) == "76", serial


# -- no key anywhere ---------------------------------------------------------------------------


def _forms(secret: bytes) -> list[bytes]:
    b64 = base64.b64encode(secret)
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def assert_no_key_in(what: str, blobs: Iterable[bytes], secrets: Iterable[bytes]) -> None:
    forms = [f for s in secrets for f in _forms(s)]
    for blob in blobs:
        for form in forms:
            assert form not in blob, f"a key (or its hex/base64) is in {what}"


def _database_blobs(engine: Engine) -> list[bytes]:
    """Every value of every table, as bytes (binary as is, the rest as text)."""
    blobs = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        blobs.append(bytes(value))
                    else:
                        blobs.append(json.dumps(value, default=str).encode())
    return blobs


def _report_blobs(cli: Cli, tmp: Path) -> list[bytes]:
    blobs = []
    for report in ("rollout", "fleet", "replacements"):
        for fmt in ("csv", "json", "html"):
            out = tmp / f"{report}.{fmt}"
            cli("report", report, "--format", fmt, "--out", out)
            blobs.append(out.read_bytes())
    return blobs


def _secrets(masters: Iterable[MasterKey], serials: Iterable[str]) -> list[bytes]:
    masters = list(masters)
    return [k.key for k in masters] + [k.terminal_key(s).key for k in masters for s in serials]


# -- TCP: the whole procedure, two workers, one killed -----------------------------------------


@pytest.mark.timeout(300)
def test_rotation_by_the_command_line_with_two_workers_one_killed(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    cli = Cli(db_url)
    with tcp_fleet(loaded, tmp_path, 20) as served:
        v1, v2 = served.key, tmp_path / "fleet-v2.key"
        cli("keys", "register", v1, "--note", "the fleet's key since 2020")
        cli("keys", "new", v2, "--version", 2)
        old, new = read_master_key(v1), read_master_key(v2)
        table = _published(loaded, tmp_path)
        plan = json.loads(
            cli("keys", "rotate", "--from", v1, "--to", v2, "--waves", "15%,100%",
                "--format", "json").stdout
        )  # fmt: skip
        rid = plan["rollout"]
        assert plan["waves"] == [3, 17] and plan["check_values"]["2"] == new.check_value
        cli("rollout", "run", rid, "--key-file", v2, code=2)  # both keys are needed

        # 1. one worker, paused after three terminals changed: a half-rotated fleet
        first = _worker(tmp_path, db_url, rid, [v1, v2], "wa", "--workers", "1")

        def pause_after_three() -> bool:  # what `rollout pause` calls, without its start-up
            if sum(j.status == "done" for j in _jobs(loaded, rid)) < 3:
                return False
            pause(loaded, rid, actor="t", reason="check the first wave")
            return True

        _until("3 terminals changed", pause_after_three)
        assert first.wait(60) == 0, (tmp_path / "wa.err").read_text()
        # another terminal is left between change and confirmation (its worker "died")
        pending = next(j.serial for j in _jobs(loaded, rid) if j.status == "pending")
        with loaded.connect() as conn:
            row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == pending)).one()
        with Link(row.link, 115200) as link:
            session = HostSession(link, row.tid, keys=[old.terminal_key(pending)])
            session.sign_on()
            session.change_key(new.terminal_key(pending))
        # fee tables go to every terminal, whichever key it is on
        pushed = json.loads(
            cli("push", "--table", table, "--group", "all", "--key-file", v1, "--key-file", v2,
                "--format", "json").stdout
        )  # fmt: skip
        assert sorted(p["serial"] for p in pushed) == sorted(served.serials)
        assert {p["outcome"] for p in pushed} == {"pushed"}
        with loaded.connect() as conn:
            held = dict(
                conn.execute(
                    select(TERMINALS.c.serial, TERMINALS.c.key_version).where(
                        TERMINALS.c.serial.in_(served.serials)
                    )
                ).all()
            )
        changed = {j.serial for j in _jobs(loaded, rid) if j.status == "done"}
        assert 3 <= len(changed) <= 12
        assert held == {s: 2 if s in changed else 1 for s in served.serials}
        rotated = next(s for s, v in held.items() if v == 2)
        res = cli("push", "--table", table, "--terminal", rotated, "--key-file", v1, code=1)
        assert "needs master key version 2" in _flat(res.output)

        # 2. resumed with two workers; after N terminals changed, the worker holding one is
        # frozen where it is and SIGKILLed (whichever it is: they start in either order)
        cli("rollout", "resume", rid)
        kill_after = len(changed) + 2
        workers = {
            name: _worker(tmp_path, db_url, rid, [v1, v2], name, "--workers", "1")
            for name in ("w0", "w1")
        }
        try:

            def busy() -> Any:
                jobs = _jobs(loaded, rid)
                if sum(j.status == "done" for j in jobs) < kill_after:
                    return None
                return next((j for j in jobs if j.status == "running"), None)

            for _ in range(200):
                job = _until(f"a job running after {kill_after} terminals changed", busy)
                victim = workers[job.lease_owner.split("/")[0]]
                victim.send_signal(signal.SIGSTOP)
                still = next(j for j in _jobs(loaded, rid) if j.id == job.id)
                if still.status == "running" and still.lease_owner == job.lease_owner:
                    break
                victim.send_signal(signal.SIGCONT)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            (survivor,) = (n for n, w in workers.items() if w is not victim)
            code = workers[survivor].wait(90)
            assert code == 0, (tmp_path / f"{survivor}.err").read_text()
        finally:
            for w in workers.values():
                if w.poll() is None:
                    w.kill()
                w.wait()
        jobs = {j.id: j for j in _jobs(loaded, rid)}
        with loaded.connect() as conn:
            final = conn.execute(select(ROLLOUTS.c.status).where(ROLLOUTS.c.id == rid)).scalar()
            attempts = conn.execute(
                select(ATTEMPTS).where(ATTEMPTS.c.kind == "key", ATTEMPTS.c.version == 2)
            ).all()
        assert final == "done" and {j.status for j in jobs.values()} == {"done"}
        taken = jobs[job.id]
        assert taken.lease_owner.startswith(f"{survivor}/") and taken.attempts >= 2
        assert (taken.last_error or "").startswith(f"lease of {job.lease_owner} expired")
        outcomes = {a.serial: a.outcome for a in attempts if a.outcome != "error"}
        assert outcomes[pending] == "confirmed", "the pending change was only confirmed"
        assert set(outcomes) == set(served.serials)

        _one_key_left({s: served.state / s for s in served.serials}, loaded, old, new)
        _check_terminal_tables(served, _wire(loaded), table)
        listed = json.loads(cli("keys", "list", "--format", "json").stdout)
        by_version = {v["version"]: v for v in listed["versions"]}
        assert by_version[2]["terminals"] == 20 and by_version[1]["terminals"] == 0
        assert listed["unissued"] == []
        status = json.loads(cli("rollout", "status", rid, "--format", "json").stdout)
        assert (status["kind"], status["version"], status["from_version"]) == ("key", 2, 1)
        report = json.loads(cli("report", "rollout", "--format", "json").stdout)
        rollouts = {r["rollout"]: r for r in report["rollouts"]}
        assert rollouts[rid]["kind"] == "key" and rollouts[rid]["done"] == 20

        cli("audit", "list", "--format", "json")
        logs = [
            (tmp_path / f"{n}.{s}").read_bytes() for n in ("wa", "w0", "w1") for s in ("out", "err")
        ]
        blobs = _database_blobs(loaded) + _report_blobs(cli, tmp_path) + logs
        blobs += [p.encode() for p in cli.printed]
        if db_url.startswith("sqlite"):
            db_file = Path(db_url.removeprefix("sqlite:///"))
            blobs += [p.read_bytes() for p in db_file.parent.glob(db_file.name + "*")]
        assert_no_key_in("the fleet's data or output", blobs, _secrets([old, new], served.serials))


# -- a terminal on a key the fleet never issued -----------------------------------------------


def test_a_terminal_on_a_key_never_issued_is_flagged(
    lite: tuple[str, Engine], tmp_path: Path
) -> None:
    db_url, loaded = lite
    cli = Cli(db_url)
    with tcp_fleet(loaded, tmp_path, 3) as served:
        v1, v2 = served.key, tmp_path / "fleet-v2.key"
        cli("keys", "register", v1)
        cli("keys", "new", v2, "--version", 2)
        old, new = read_master_key(v1), read_master_key(v2)
        rogue = MasterKey(9, bytes(range(200, 216)))  # someone holding the leaked key re-keys
        victim = served.serials[1]
        with loaded.connect() as conn:
            row = conn.execute(select(TERMINALS).where(TERMINALS.c.serial == victim)).one()
        with Link(row.link, 115200) as link:
            attacker = HostSession(link, row.tid, keys=[old.terminal_key(victim)])
            attacker.rotate_key(rogue.terminal_key(victim))
        res = cli("sync", "--terminal", victim, "--format", "json", code=1)
        assert "reports key version 9, which the fleet never issued (issued: 1)" in _flat(
            res.output
        )
        assert json.loads(res.stdout)[0]["reason"] == "unissued_key"
        listed = json.loads(cli("keys", "list", "--format", "json").stdout)
        assert [(u["serial"], u["key_version"]) for u in listed["unissued"]] == [(victim, 9)]
        assert "never issued" in _flat(cli("keys", "list").stdout)
        flagged = json.loads(cli("replacements", "--format", "json").stdout)["terminals"]
        (entry,) = (t for t in flagged if t["serial"] == victim)
        assert entry["priority"] == "P1" and entry["replace_by"] == entry["reasons"][-1]["due"]
        assert (
            entry["reasons"][-1]["code"] == "key"
            and "key version 9" in entry["reasons"][-1]["detail"]
        )
        assert all(
            r["code"] != "key" for t in flagged if t["serial"] != victim for r in t["reasons"]
        )
        table = _published(loaded, tmp_path)
        res = cli("push", "--table", table, "--terminal", victim, "--key-file", v1, code=1)
        assert "never issued" in _flat(res.output)
        rid = json.loads(
            cli("keys", "rotate", "--from", v1, "--to", v2, "--max-failures", "50%",
                "--format", "json").stdout
        )["rollout"]  # fmt: skip
        cli("rollout", "run", rid, "--key-file", v1, "--key-file", v2, "--workers", "2")
        jobs = {j.serial: j for j in _jobs(loaded, rid)}
        assert jobs[victim].status == "failed" and jobs[victim].attempts == 1, "not retried"
        assert "never issued" in (jobs[victim].last_error or "")
        assert {jobs[s].status for s in served.serials if s != victim} == {"done"}
        report = json.loads(cli("report", "rollout", "--format", "json").stdout)
        failures = report["failures"]
        assert [(f["failed"], f["example"]) for f in failures] == [(1, victim)]
        with loaded.connect() as conn:
            assert conn.execute(
                select(TERMINALS.c.key_version).where(TERMINALS.c.serial == victim)
            ).scalar() == 9  # fmt: skip
        assert_no_key_in(
            "the fleet's data or output",
            _database_blobs(loaded) + [p.encode() for p in cli.printed],
            _secrets([old, new, rogue], served.serials),
        )


# -- a pty behind a slow line: killed between change and confirmation ---------------------------


def _next_key_stored(state: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{state / 'terminal.db'}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return False
    try:
        return bool(conn.execute("SELECT 1 FROM mac_keys WHERE role = 'next'").fetchone())
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.mark.timeout(180)
def test_worker_killed_between_change_and_confirmation_over_a_pty(
    lite: tuple[str, Engine], tmp_path: Path
) -> None:
    db_url, loaded = lite
    cli = Cli(db_url)
    (serial, model, fw, tid, mid, mcc), *_ = _terminals(loaded, 1)
    v1, v2 = tmp_path / "fleet-v1.key", tmp_path / "fleet-v2.key"
    cli("keys", "new", v1)
    cli("keys", "new", v2, "--version", 2)
    state = tmp_path / "state"
    procs: list[subprocess.Popen[str]] = []
    try:
        term = subprocess.Popen(
            [*POSSIM, "serve", "--serial", serial, "--tid", tid, "--mid", mid, "--model", model,
             "--firmware", fw, "--mcc", str(mcc), "--key-file", str(v1), "--state-dir",
             str(state), "--port", "pty", "--baud", "2400"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(term)
        assert term.stdout is not None
        pty = term.stdout.readline().split()[1]
        line = subprocess.Popen(
            [*POSSIM, "line", pty, "pty", "--baud", "2400"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        procs.append(line)
        assert line.stdout is not None
        url = line.stdout.readline().split()[2]
        cli("sync", "--terminal", serial, "--port", url)
        rid = json.loads(
            cli("keys", "rotate", "--from", v1, "--to", v2, "--format", "json").stdout
        )["rollout"]
        slow = ("--workers", "1", "--baud", "2400")
        w0 = _worker(tmp_path, db_url, rid, [v1, v2], "w0", *slow)
        # the change is stored: its answer is still on the wire, the confirmation not sent
        _until("the terminal to store the next key", lambda: _next_key_stored(state))
        w0.send_signal(signal.SIGKILL)
        w0.wait(10)
        time.sleep(1.0)
        store = StateStore(state)
        try:
            keys = store.mac_keys()
        finally:
            store.close()
        assert {r: v for r, (v, _) in keys.items()} == {"current": 1, "next": 2}
        w1 = _worker(tmp_path, db_url, rid, [v1, v2], "w1", *slow)
        assert w1.wait(120) == 0, (tmp_path / "w1.err").read_text()
        (job,) = _jobs(loaded, rid)
        with loaded.connect() as conn:
            (attempt,) = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.job_id == job.id)).all()
        assert job.status == "done" and job.lease_owner.startswith("w1/")
        assert (job.last_error or "").startswith("lease of w0/")
        assert attempt.outcome == "confirmed" and attempt.worker.startswith("w1/")
        _one_key_left({serial: state}, loaded, read_master_key(v1), read_master_key(v2), 2400)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)


def test_the_key_search_finds_every_form() -> None:
    key = bytes(range(16))
    for form in _forms(key):
        with pytest.raises(AssertionError, match="a key"):
            assert_no_key_in("a blob", [b"x" + form + b"y"], [key])
    assert_no_key_in("a blob", [key[:15] + b"!", key.hex()[:30].encode()], [key])
