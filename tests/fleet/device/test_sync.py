"""`posfleet sync` against real `possim` terminals, on a pty and over TCP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.audit import AuditFilter, query
from fleet.core.models import MERCHANTS, TERMINALS
from fleet.inventory import get_terminal
from protocols.mac import generate_master_key_file

POSSIM = [sys.executable, "-m", "terminal_sim.cli"]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    generate_master_key_file(path)
    return path


@contextmanager
def possim(
    key_file: Path,
    state: Path,
    *,
    serial: str,
    tid: str,
    mid: str,
    model: str,
    firmware: str,
    port: str = "tcp://127.0.0.1:0",
    mcc: int | None = None,
) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            *POSSIM,
            "serve",
            "--serial",
            serial,
            "--tid",
            tid,
            "--mid",
            mid,
            "--key-file",
            str(key_file),
            "--state-dir",
            str(state),
            "--model",
            model,
            "--firmware",
            firmware,
            "--port",
            port,
            *(["--mcc", str(mcc)] if mcc is not None else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:1] == ["READY"], first
        yield first[1]
    finally:
        proc.terminate()
        proc.wait(10)


def _deployed(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        serial = (
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.status == "deployed", TERMINALS.c.model == "PF-200")
                .order_by(TERMINALS.c.serial)
            )
            .scalars()
            .first()
        )
        assert serial is not None
        row = get_terminal(conn, serial)
    assert row is not None
    return row


def merchant_mcc(engine: Engine, row: dict[str, object]) -> int:
    """The MCC of the terminal's merchant: what an emulated terminal of it is set up with."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(MERCHANTS.c.mcc).where(MERCHANTS.c.id == row["merchant_id"])
            ).scalar_one()
        )


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_sync_records_what_the_terminal_reports(
    loaded: Engine, db_url: str, key_file: Path, tmp_path: Path, transport: str
) -> None:
    row = _deployed(loaded)
    new_fw = "2.2.0" if row["firmware"] != "2.2.0" else "2.1.0"
    port = "tcp://127.0.0.1:0" if transport == "tcp" else "pty"
    with possim(
        key_file,
        tmp_path / "t",
        serial=str(row["serial"]),
        tid=str(row["tid"]),
        mid=str(row["mid"]),
        model="PF-200",
        firmware=new_fw,
        port=port,
        mcc=merchant_mcc(loaded, row),
    ) as url:
        res = CliRunner().invoke(
            app,
            [
                "--db",
                db_url,
                "--actor",
                "field-7",
                "sync",
                "--terminal",
                str(row["serial"]),
                "--port",
                url,
                "--format",
                "json",
            ],
        )
        assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)[0]
    assert doc["firmware"] == new_fw and doc["changes"]["firmware"] == [row["firmware"], new_fw]
    with loaded.connect() as conn:
        after = get_terminal(conn, str(row["serial"]))
    assert after is not None
    assert (after["firmware"], after["link"], after["active_version"]) == (new_fw, url, 0)
    assert after["last_seen"] is not None and after["last_seen"].tzinfo is not None
    entries = list(query(loaded, AuditFilter(action="sync", target=f"terminal:{row['serial']}")))
    assert len(entries) == 1 and entries[0].actor == "field-7"
    assert entries[0].details["changes"]["firmware"] == [row["firmware"], new_fw]


def test_sync_by_link_and_all(loaded: Engine, db_url: str, key_file: Path, tmp_path: Path) -> None:
    row = _deployed(loaded)
    runner = CliRunner()
    with possim(
        key_file,
        tmp_path / "t",
        serial=str(row["serial"]),
        tid=str(row["tid"]),
        mid=str(row["mid"]),
        model="PF-200",
        firmware=str(row["firmware"]),
        mcc=merchant_mcc(loaded, row),
    ) as url:
        res = runner.invoke(
            app, ["--db", db_url, "terminals", "update", str(row["serial"]), "--link", url]
        )
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["--db", db_url, "sync", "--port", url])
        assert res.exit_code == 0, res.output
        assert str(row["serial"]) in res.stdout
        res = runner.invoke(app, ["--db", db_url, "sync", "--all", "--format", "json"])
        assert res.exit_code == 0, res.output
        assert [d["serial"] for d in json.loads(res.stdout)] == [row["serial"]]
    res = runner.invoke(app, ["--db", db_url, "sync", "--port", "socket://127.0.0.1:9"])
    assert res.exit_code == 1 and "no terminal in the inventory has link" in res.output


def test_sync_refuses_disagreement_and_changes_nothing(
    loaded: Engine, db_url: str, key_file: Path, tmp_path: Path
) -> None:
    row = _deployed(loaded)
    serial, tid, mid = str(row["serial"]), str(row["tid"]), str(row["mid"])
    mcc = merchant_mcc(loaded, row)
    runner = CliRunner()

    def sync(url: str) -> str:
        res = runner.invoke(
            app, ["--db", db_url, "sync", "--terminal", serial, "--port", url, "--timeout", "2"]
        )
        assert res.exit_code == 1, res.output
        return " ".join(res.output.split())

    cases: list[tuple[dict[str, Any], str]] = [
        (
            dict(serial="PSXXXXXX", tid=tid, mid=mid, model="PF-200", firmware="2.2.0"),
            "answers as serial PSXXXXXX",
        ),
        (
            dict(serial=serial, tid=tid, mid="M99999999999999", model="PF-200", firmware="2.2.0"),
            "reports MID M99999999999999",
        ),
        (
            dict(serial=serial, tid=tid, mid=mid, model="PF-200", firmware="9.9.9"),
            "firmware 9.9.9, not in the catalog",
        ),
        (dict(serial=serial, tid="T9999999", mid=mid, model="PF-200", firmware="2.2.0"), "63"),
        (
            dict(
                serial=serial,
                tid=tid,
                mid=mid,
                model="PF-200",
                firmware="2.2.0",
                mcc=(mcc + 1) % 10000,
            ),
            f"reports MCC {(mcc + 1) % 10000:04d}, its merchant",
        ),
    ]
    for i, (kw, needle) in enumerate(cases):
        kw.setdefault("mcc", mcc)
        with possim(key_file, tmp_path / f"t{i}", **kw) as url:
            assert needle in sync(url), needle
    assert needle in sync("socket://127.0.0.1:9") or "refused" in sync("socket://127.0.0.1:9")
    with loaded.connect() as conn:
        assert get_terminal(conn, serial) == row
    assert not list(query(loaded, AuditFilter(action="sync")))
    res = runner.invoke(app, ["--db", db_url, "sync", "--terminal", "NOPE", "--port", "pty"])
    assert res.exit_code == 1 and "unknown terminal NOPE" in res.output
    assert runner.invoke(app, ["--db", db_url, "sync"]).exit_code == 2
