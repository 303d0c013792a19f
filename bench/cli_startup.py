"""CLI start-up: whole-process CPU time of `posfleet --help`, `posfleet notices verify CODE`
and `possim --help`, each beside a bare two-command Typer app's `--help`, in one run.

A field engineer runs dozens of commands a day and the call centre runs ``notices verify``
on every call, so what a command costs before it does its work matters. Each command runs
as a fresh process (``RUNS`` times, interleaved with the reference so that load on the
machine falls on both alike); its CPU time is user + system from ``os.wait4``, the median
is reported. The reference is a Typer app with two commands written to a temporary file
and run by the same interpreter; its ``hello NAME`` is shown too, for what Typer itself
adds to running any command. Target (issue 12): each of the three ≤ 2× the reference.
Beside them, for context, ``python -c "import sqlalchemy"``: what verify cost before it
ran on plain DB-API (:mod:`fleet.core.dbapi`: sqlite3 or psycopg, the SQL compiled from
the Core clauses of :mod:`fleet.core.clauses`), when it read the database through
SQLAlchemy Core — it imports SQLAlchemy no more.

``notices verify`` runs against a small database built here the way a user would: a
seeded sample fleet, one swap (which queues the merchant's notices), ``posfleet notices
dispatch`` to a folder outbox, and the code of one message it sent; the command must say
GENUINE.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

RUNS = 9
TARGET = 2.0

HELLO = '''\
import typer

app = typer.Typer()


@app.command()
def hello(name: str) -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def bye(name: str) -> None:
    """Say goodbye."""
    print(f"bye {name}")


if __name__ == "__main__":
    app()
'''

POLICY = """\
[notices]
quiet_hours = "00:00-00:00"
digest_window = "0s"
"""


def cpu_seconds(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """User + system CPU seconds of one run of ``argv`` (which must succeed)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    errors = proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {errors.strip()}")
    return usage.ru_utime + usage.ru_stime


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(argv: Sequence[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def demo_code(directory: Path) -> tuple[dict[str, str], str]:
    """A small database with one real message; the environment to reach it and its code."""
    from fleet.core import db  # noqa: PLC0415 - the bench's own set-up, not measured
    from fleet.inventory import (  # noqa: PLC0415
        import_catalog,
        import_merchants,
        import_terminals,
        iter_terminals,
    )
    from fleet.sample.seed import write_sample  # noqa: PLC0415

    sample = write_sample(directory / "sample", terminals=300)
    path = directory / "fleet.db"
    engine = db.connect(str(path))
    db.upgrade(engine)
    import_catalog(engine, sample.catalog, actor="bench")
    import_merchants(engine, sample.merchants, actor="bench")
    import_terminals(engine, sample.terminals, actor="bench")
    old = next(iter_terminals(engine, status="deployed", limit=1))["serial"]
    new = next(iter_terminals(engine, status="in_stock", limit=1))["serial"]
    engine.dispose()
    (directory / "posfleet.toml").write_text(POLICY, encoding="utf-8")
    env = os.environ | {
        "POSFLEET_DB": str(path),
        "POSFLEET_POLICY": str(directory / "posfleet.toml"),
        "POSFLEET_ACTOR": "bench",
        "POSFLEET_OUTBOX": str(directory / "outbox"),
    }
    posfleet = _bin("posfleet")
    _run([posfleet, "swap", old, new, "--reason", "bench: start-up"], env)
    _run([posfleet, "notices", "dispatch"], env)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT code FROM message WHERE status = 'sent' LIMIT 1").fetchone()
    if row is None:
        raise RuntimeError("notices dispatch sent no message")
    code = str(row[0])
    if "GENUINE" not in _run([posfleet, "notices", "verify", code], env).split(":")[0]:
        raise RuntimeError(f"notices verify {code} did not find the message")
    return env, code


def medians(
    commands: dict[str, list[str]], env: dict[str, str], runs: int = RUNS
) -> dict[str, float]:
    """Median CPU seconds per command, the commands taking turns run after run."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # a first, unmeasured run warms the caches
        cpu_seconds(argv, env)
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(cpu_seconds(argv, env))
    return {name: statistics.median(t) for name, t in times.items()}


def run(runs: int = RUNS) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        hello = directory / "hello.py"
        hello.write_text(HELLO, encoding="utf-8")
        env, code = demo_code(directory)
        posfleet = _bin("posfleet")
        figures = medians(
            {
                "hello": [sys.executable, str(hello), "--help"],
                "bare Typer app hello NAME": [sys.executable, str(hello), "hello", "you"],
                "posfleet --help": [posfleet, "--help"],
                "posfleet notices verify": [posfleet, "notices", "verify", code],
                "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
                "possim --help": [_bin("possim"), "--help"],
            },
            env,
            runs,
        )
    ref = figures.pop("hello")
    lines = [
        f"CLI start-up: whole-process CPU (user + sys), median of {runs} runs, beside a bare "
        "two-command Typer app's --help",
        f"  {'bare Typer app --help':<30} {ref * 1000:7.0f} ms   1.00×  (reference)",
    ]
    notes = {
        "bare Typer app hello NAME": "  (running a command: Typer's own cost beyond --help)",
        "python -c 'import sqlalchemy'": "  (SQLAlchemy's import alone: verify no longer needs it)",
    }
    for name, cpu in figures.items():
        ratio = cpu / ref
        note = notes.get(name, "")
        if name in ("posfleet --help", "posfleet notices verify", "possim --help"):
            note = f"  target ≤ {TARGET:g}×: {'ok' if ratio <= TARGET else 'OVER'}"
        lines.append(f"  {name:<30} {cpu * 1000:7.0f} ms  {ratio:5.2f}×{note}")
    return lines


if __name__ == "__main__":
    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS)))
