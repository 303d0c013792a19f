"""Atomic, validated, idempotent imports; every bad row named; nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.audit import record
from fleet.core.db import writer
from fleet.core.errors import NotFoundError
from fleet.core.models import AUDIT, MERCHANTS, TERMINALS
from fleet.core.records import RejectedFileError
from fleet.inventory import (
    add_terminal,
    import_catalog,
    import_merchants,
    import_terminals,
    iter_terminals,
    set_links,
    terminal_cells,
    update_terminal,
)
from fleet.sample.seed import SampleFiles, write_sample

HEADER = "serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,status,link\n"
GOOD = "PS90000001,PF-300,3.0.2,T9000001,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,\n"


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def snapshot(engine: Engine) -> tuple[int, int, int]:
    return count(engine, TERMINALS), count(engine, MERCHANTS), count(engine, AUDIT)


def rejected(engine: Engine, path: Path, kind: str = "terminals") -> list[str]:
    before = snapshot(engine)
    fn = {"terminals": import_terminals, "merchants": import_merchants, "catalog": import_catalog}[
        kind
    ]
    with pytest.raises(RejectedFileError) as info:
        fn(engine, path, actor="t")
    assert snapshot(engine) == before, "a rejected file wrote something"
    return [str(e) for e in info.value.errors]


def test_mixed_good_and_bad_rows_write_nothing(loaded: Engine, tmp_path: Path) -> None:
    f = tmp_path / "mixed.csv"
    f.write_text(
        HEADER
        + GOOD
        + "PS90000002,PF-900,1.0,T9000002,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,\n"
        + "PS90000003,PF-300,3.0.2,T9000003,M00000000000001,M00000000000001,2024-02-30,2024-03-01,deployed,\n"
        + "PS90000004,PF-300,3.0.2,T9000004,M00000000000001,M00000000000001,2024-02-01,2024-01-01,deployed,\n"
        + "PS90000005,PF-300,9.9,T9000005,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,\n"
        + "PS90000006,PF-300,3.0.2,T9000006,M00000000000001,M00000009999999,2024-02-01,2024-03-01,deployed,\n"
        + "PS90000007,PF-300,3.0.2,T9000007,M00000000000001,M00000000000001,2024-02-01,2024-03-01,active,\n"
        + "PS90000001,PF-300,3.0.2,,,,2024-02-01,,in_stock,\n"
        + "PS90000008,PF-300,3.0.2,,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,\n"
        + "PS90000009,PF-300,3.0.2,T9000009,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,socket://h\n"
        + "PS90000010,PF-300,3.0.2,T9000001,M00000000000001,M00000000000001,2024-02-01,2024-03-01,deployed,\n"
        + "PS90000011,PF-300\n"
        + "PS90000012,PF-300,3.0.2,,,M00000000000001,2024-02-01,,in_stock,\n"
        + "PS90000013,PF-300,3.0.2,T9000013,M00000000000001,M00000000000001,2099-02-01,2099-03-01,deployed,\n"
    )
    errors = rejected(loaded, f)
    p = str(f)
    expected = [
        f"{p}:3: model: unknown model PF-900",
        f"{p}:4: manufactured_on: not a date: '2024-02-30' (want YYYY-MM-DD)",
        f"{p}:5: deployed_on: 2024-01-01 is before manufactured_on 2024-02-01",
        f"{p}:6: firmware: unknown firmware 9.9 for model PF-300",
        f"{p}:7: merchant_id: unknown merchant M00000009999999",
        f"{p}:8: status: unknown status 'active' (want in_stock, deployed, faulty, swapped_out, retired)",
        f"{p}:9: serial: duplicate serial PS90000001 (first on line 2)",
        f"{p}:10: tid: required for a deployed terminal",
        f"{p}:11: link: 'socket://h' needs host:port",
        f"{p}:12: tid: TID T9000001 is also PS90000001's (line 2)",
        f"{p}:13: 2 cells, the header has 10",
        f"{p}:14: merchant_id: an in_stock terminal has no merchant (deployed?)",
        f"{p}:15: manufactured_on: 2099-02-01 is in the future",
        f"{p}:15: deployed_on: 2099-03-01 is in the future",
    ]
    assert errors == expected


def test_header_problems(loaded: Engine, tmp_path: Path) -> None:
    f = tmp_path / "h.csv"
    f.write_text(
        "serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,statuss,link\n"
        + GOOD
    )
    errors = rejected(loaded, f)
    assert f"{f}:1: statuss: unknown column" in errors[0]
    assert f"{f}:1: status: required column missing" in errors
    f.write_text("serial,model,firmware,status\nX,PF-300,3.0.2,in_stock\n")
    errors = rejected(loaded, f)
    assert {e.split(": ")[1] for e in errors} == {
        "tid",
        "mid",
        "merchant_id",
        "manufactured_on",
        "deployed_on",
        "link",
    }
    f.write_text("")
    assert rejected(loaded, f) == [f"{f}:1: empty file: no header row"]
    f.write_bytes(HEADER.encode() + b"PS1,\xff\xfe,1,,,,,,in_stock,\n")
    assert "not UTF-8" in rejected(loaded, f)[0]
    (tmp_path / "x.xml").write_text("<x/>")
    assert "unknown format" in rejected(loaded, tmp_path / "x.xml")[0]
    assert "No such file" in rejected(loaded, tmp_path / "missing.csv")[0]


def test_live_tid_held_by_another_terminal_in_the_db(loaded: Engine, tmp_path: Path) -> None:
    with loaded.connect() as conn:
        holder = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.tid)
            .where(TERMINALS.c.status == "deployed")
            .limit(1)
        ).one()
    f = tmp_path / "clash.csv"
    f.write_text(HEADER + GOOD.replace("T9000001", holder.tid))
    errors = rejected(loaded, f)
    assert any(f"TID {holder.tid}" in e and holder.serial in e for e in errors), errors


def test_json_rows_carry_their_line(loaded: Engine, tmp_path: Path) -> None:
    rows = [
        dict(zip(HEADER.strip().split(","), GOOD.strip().split(","), strict=True)) for _ in range(2)
    ]
    rows[1]["serial"] = "PS90000002"
    rows[1]["tid"] = "T9000002"
    rows[1]["model"] = "NOPE"
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"terminals": rows}, indent=2))
    errors = rejected(loaded, f)
    assert errors == [f"{f}:15: model: unknown model NOPE"]  # the line its object starts on
    f.write_text(json.dumps(rows[:1], indent=1))
    assert import_terminals(loaded, f, actor="t").inserted == 1
    twice = [rows[0], rows[0] | {"tid": "T9000009"}]
    f.write_text(json.dumps(twice))  # one line: both rows are on line 1
    assert f"{f}:1: serial: duplicate serial PS90000001 (first on line 1)" in rejected(loaded, f)
    f.write_text('[{"serial": "x",}]')
    assert rejected(loaded, f)[0].startswith(f"{f}:1: bad JSON")
    f.write_text('[1, {"serial": "PS1"}]')
    assert f"{f}:1: expected an object, not int" in rejected(loaded, f)


def test_reimport_is_idempotent_and_keeps_absent_columns(
    loaded: Engine, sample: SampleFiles, tmp_path: Path
) -> None:
    before = list(iter_terminals(loaded))
    again = import_terminals(loaded, sample.terminals, actor="t")
    assert (again.inserted, again.updated) == (0, len(before))
    assert list(iter_terminals(loaded)) == before
    serial = before[0]["serial"]
    seen = tmp_path / "seen.csv"
    cells = terminal_cells(before[0]) | {
        "last_seen": "2026-11-01T10:00:00+08:00",
        "active_version": "7",
    }
    seen.write_text(",".join(cells) + "\n" + ",".join(cells.values()) + "\n")
    import_terminals(loaded, seen, actor="t")
    import_terminals(loaded, sample.terminals, actor="t")  # has neither column
    after = {t["serial"]: t for t in iter_terminals(loaded)}
    assert after[serial]["active_version"] == 7
    assert after[serial]["last_seen"].isoformat() == "2026-11-01T02:00:00+00:00"


def test_merchants_bad_phone_and_more(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text(
        "id,name,mcc,phone,email,language,timezone,country,channels,opt_out\n"
        "M1,Good,5411,+86 138 0013 8000,a@b.cn,zh-cn,Asia/Shanghai,CN,sms;email,\n"
        "M2,Bad phone,5411,+86 123,a@b.cn,en,UTC,,,\n"
        "M3,National,5411,0755 8888 1234,,en,UTC,,,\n"
        "M4,Bad mcc,54,,,en,Mars/Olympus,,fax,\n"
        "M1,Dup,5411,,,en,UTC,,,\n"
        "M6,Opted out,5411,,x@y.z,en,UTC,,sms,sms\n"
    )
    errors = rejected(engine, f, "merchants")
    p = str(f)
    assert errors[0] == f"{p}:3: phone: not a valid phone number: '+86 123'"
    assert errors[1].startswith(f"{p}:4: phone: not a phone number: '0755 8888 1234'")
    assert f"{p}:5: mcc: MCC must be 4 digits, not '54'" in errors
    assert any(e.startswith(f"{p}:5: timezone: unknown time zone 'Mars/Olympus'") for e in errors)
    assert any(e.startswith(f"{p}:5: channels: unknown channel 'fax'") for e in errors)
    assert f"{p}:6: id: merchant M1 also on line 2" in errors
    assert f"{p}:7: opt_out: opts out of every preferred channel" in errors
    f.write_text("id,name,mcc,phone,country,language\nM1,Good,5411,0755 8888 1234,CN,ZH-cn\n")
    import_merchants(engine, f, actor="t")
    with engine.connect() as conn:
        row = conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == "M1")).one()
    assert (row.phone, row.language) == ("+8675588881234", "zh-CN")


def test_catalog_errors(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        '[[models]]\ncode = "A"\nvendor = "V"\nsuccessor = "B"\nunit_price = "1.999"\n'
        '[[firmware]]\nmodel = "Z"\nversion = "1"\n'
        '[[advisories]]\nid = "X-1"\nmodel = "A"\naffects = ["9"]\n'
        "[[widgets]]\nx = 1\n"
    )
    errors = rejected(engine, f, "catalog")
    assert "widgets: unknown section" in " ".join(errors)
    assert f"{f}:models[0]: successor: unknown model B" in errors
    assert f"{f}:models[0]: unit_price: 1.999 has more than 2 decimals for EUR" in errors
    assert f"{f}:firmware[0]: model: unknown model Z" in errors
    assert f"{f}:advisories[0]: affects: unknown firmware 9 for model A" in errors
    models = tmp_path / "models.csv"
    models.write_text("code,vendor,end_of_sale,end_of_support\nA,V,2020-01-01,2019-01-01\n")
    assert rejected(engine, models, "catalog") == [
        f"{models}:2: end_of_support: 2019-01-01 is before end_of_sale 2020-01-01"
    ]
    models.write_text("code,vendor,contactless,unit_price,currency\nA,V,yes,100,JPY\n")
    assert import_catalog(engine, models, actor="t").inserted == 1
    fw = tmp_path / "fw.csv"
    fw.write_text("model,version,end_of_support\nA,1.0,2030-01-01\n")
    adv = tmp_path / "adv.csv"
    adv.write_text("id,model,affects,fixed_in,severity\nX-1,A,1.0,,critical\n")
    assert import_catalog(engine, fw, actor="t").inserted == 1
    assert import_catalog(engine, adv, actor="t").inserted == 1


def test_add_update_and_audit(loaded: Engine) -> None:
    with pytest.raises(NotFoundError) as missing:
        update_terminal(loaded, "NOPE", {"status": "faulty"}, actor="t")
    assert str(missing.value) == "NOPE: unknown terminal" and missing.value.exit_code == 2
    added = add_terminal(
        loaded,
        "PS99999999",
        {"model": "QR-10", "firmware": "1.2", "status": "in_stock"},
        actor="bob",
        reason="new stock",
    )
    assert added.before is None and added.after["status"] == "in_stock"
    assert added.changed()["model"] == ("", "QR-10")
    with pytest.raises(RejectedFileError) as info:
        update_terminal(loaded, "PS99999999", {"status": "deployed"}, actor="bob")
    assert {e.column for e in info.value.errors} == {"merchant_id", "tid", "mid", "deployed_on"}
    # the refusal names the terminal, not a front end
    assert str(info.value) == "terminal PS99999999: 4 errors, nothing written"
    assert str(info.value.errors[0]).startswith("terminal PS99999999: ")
    with pytest.raises(RejectedFileError) as info:
        add_terminal(loaded, "PS99999999", {"model": "QR-10"}, actor="bob")
    assert [str(e) for e in info.value.errors] == ["terminal PS99999999: serial: already exists"]
    faulted = update_terminal(loaded, "PS99999999", {}, actor="bob", add_fault=True)
    assert faulted.changed() == {"fault_count": ("0", "1")}
    runner = CliRunner()
    with loaded.connect() as conn:
        serial = conn.execute(
            select(TERMINALS.c.serial).where(TERMINALS.c.status == "deployed").limit(1)
        ).scalar_one()
    url = str(loaded.url.render_as_string(hide_password=False))
    res = runner.invoke(
        app,
        [
            "--db",
            url,
            "--actor",
            "alice",
            "terminals",
            "update",
            serial,
            "--status",
            "faulty",
            "--add-fault",
            "--reason",
            "screen cracked",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--db", url, "audit", "list", "--actor", "alice", "--format", "json"])
    entries = json.loads(res.stdout)
    assert len(entries) == 1 and entries[0]["reason"] == "screen cracked"
    assert json.loads(entries[0]["details"])["status"] == ["deployed", "faulty"]
    res = runner.invoke(
        app, ["--db", url, "audit", "list", "--target", "terminal:PS9*", "--format", "csv"]
    )
    lines = res.stdout.splitlines()
    assert lines[0] == "id,at,actor,action,target,reason,details" and len(lines) == 3
    assert runner.invoke(app, ["--db", url, "audit", "list", "--action", "explode"]).exit_code == 2
    res = runner.invoke(app, ["--db", url, "terminals", "update", "NOPE", "--status", "faulty"])
    assert res.exit_code == 2 and res.stderr == "error: NOPE: unknown terminal\n"
    res = runner.invoke(app, ["--db", url, "terminals", "update", serial])
    assert res.exit_code == 2 and "nothing to change" in res.stderr
    res = runner.invoke(app, ["--db", url, "terminals", "list", "--status", "broken"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "--status must be one of in_stock, deployed, faulty" in res.stderr


def test_cli_export_round_trip_and_schema_guard(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "export.csv"
    res = runner.invoke(app, ["--db", db_url, "terminals", "export", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["--db", db_url, "terminals", "import", str(out), "--output", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["inserted"] == 0 and doc["rows"] == 300
    res = runner.invoke(app, ["--db", db_url, "terminals", "export", "--format", "json"])
    assert len(json.loads(res.stdout)) == 300
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    res = runner.invoke(app, ["--db", empty, "terminals", "list"])
    assert res.exit_code == 1 and "posfleet db upgrade" in res.output
    res = runner.invoke(app, ["--db", empty, "db", "upgrade"])
    assert res.exit_code == 0 and "→" in res.stdout
    res = runner.invoke(app, ["--db", empty, "db", "upgrade"])
    assert "already at" in res.stdout
    res = runner.invoke(app, ["--db", "mysql://x/y", "terminals", "list"])
    assert res.exit_code == 1 and "unsupported database" in res.output


def test_killed_import_leaves_nothing(engine: Engine, db_url: str, tmp_path: Path) -> None:
    sample = write_sample(tmp_path / "big", terminals=40_000, merchants=2_000)
    import_catalog(engine, sample.catalog, actor="t")
    import_merchants(engine, sample.merchants, actor="t")
    env = dict(os.environ, COLUMNS="80")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from fleet.cli import main; main()",
            "--db",
            db_url,
            "terminals",
            "import",
            str(sample.terminals),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    # wait until the import is under way (its transaction holds rows), then kill it
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if db_url.startswith("postgresql"):
            with engine.connect() as conn:
                busy = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND "
                    # a load into the empty table COPYs straight into it (bulk_load)
                    "(query ILIKE 'INSERT INTO terminal%%' OR query ILIKE 'COPY terminal%%')"
                ).scalar()
            if busy:
                break
        elif (
            Path(db_url.removeprefix("sqlite:///") + "-wal").exists()
            and Path(db_url.removeprefix("sqlite:///") + "-wal").stat().st_size > 1_000_000
        ):
            break
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert count(engine, TERMINALS) == 0
    assert import_terminals(engine, sample.terminals, actor="t").inserted == 40_000


def test_set_links_all_or_nothing(loaded: Engine) -> None:
    serials = [t["serial"] for t in iter_terminals(loaded, limit=2)]
    with pytest.raises(RejectedFileError) as info:
        set_links(
            loaded,
            {serials[0]: "socket://127.0.0.1:7000", "NOPE": "socket://h:1", serials[1]: "ftp://x"},
            actor="t",
        )
    assert {str(e) for e in info.value.errors} == {
        "terminal NOPE: serial: unknown terminal",
        f"terminal {serials[1]}: link: not an allowed link: 'ftp://x' (want a serial device /dev/tty…, /dev/pts/N, /dev/serial/by-id/…, or socket://HOST:PORT, rfc2217://HOST:PORT)",
    }
    assert str(info.value) == "terminal links: 2 errors, nothing written"
    assert all(t["link"] in ("", None) for t in iter_terminals(loaded, limit=2))
    assert set_links(loaded, {serials[0]: "socket://127.0.0.1:7000"}, actor="t") == 1
    assert next(iter_terminals(loaded, limit=1))["link"] == "socket://127.0.0.1:7000"


def test_readers_do_not_wait_for_a_writer(loaded: Engine) -> None:
    """A report during a long import: the writer holds the write lock, readers go on."""
    with writer(loaded).begin() as conn:
        record(conn, actor="t", action="import", target="long")
        # a reader that waited for the lock would fail with "database is locked"
        assert len(list(iter_terminals(loaded, limit=5))) == 5
