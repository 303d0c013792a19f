"""Health history: samples stored per terminal (record, sync, `posfleet health poll` over
TCP against `possim fleet`), the latest health and the wear sums kept with them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core import db
from fleet.core.db import writer
from fleet.core.models import EVENTS, HEALTH_SAMPLES, TERMINALS
from fleet.device.health import HealthReport, latest_health, record_health
from fleet.replacements.flags import FLAGS
from fleet.replacements.wear import Fit, days
from fleet.sample.seed import write_possim_manifest
from protocols.health import Battery, CardReads, HealthInfo, PaperState, Printer, RebootReason
from protocols.mac import generate_master_key_file

POSSIM = [sys.executable, "-m", "terminal_sim.cli"]
T0 = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)


def health(chip: int, lines: int, cycles: int, *, tampered: datetime | None = None) -> HealthInfo:
    return HealthInfo(
        card_reads=CardReads(chip=chip, contactless=5, magstripe=chip // 10),
        uptime=60,
        last_reboot=RebootReason.POWER_ON,
        free_storage=2**33,
        battery=Battery(level=90, health=95, cycles=cycles),
        printer=Printer(PaperState.OK, lines=lines),
        tampered=tampered is not None,
        tampered_at=tampered,
    )


def first_deployed(engine: Engine, n: int = 1) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(TERMINALS.c.serial)
                .where(TERMINALS.c.status == "deployed")
                .order_by(TERMINALS.c.serial)
                .limit(n)
            ).scalars()
        )


def test_samples_keep_the_latest_and_the_least_squares_sums(loaded: Engine) -> None:
    (serial,) = first_deployed(loaded)
    reports = [
        HealthReport(serial, health(1000 + 100 * d, 5000 + 50 * d, 10 + d), T0 + timedelta(days=d))
        for d in (0, 10, 20)
    ]
    with loaded.begin() as conn:  # the newest first: order of arrival does not matter
        assert record_health(conn, list(reversed(reports))) == []
        assert record_health(conn, reports[:1]) == []  # the same instant again: ignored
    with loaded.connect() as conn:
        latest = latest_health(conn, serial)
        stored = conn.execute(
            select(func.count())
            .select_from(HEALTH_SAMPLES)
            .where(HEALTH_SAMPLES.c.serial == serial)
        ).scalar_one()
    assert stored == 3 and latest is not None
    assert latest["samples"] == 3 and latest["at"] == T0 + timedelta(days=20)
    # reader = chip + magstripe: 3000 + 300 at day 20
    assert (latest["reader"], latest["printer_lines"], latest["battery_cycles"]) == (3300, 6000, 30)
    want = Fit.of([(days(T0 + timedelta(days=d)), 1100 + 110 * d) for d in (0, 10, 20)])
    got = Fit(*(latest[f"reader_{s}"] for s in ("n", "sx", "sxx", "sy", "sxy")))
    assert got.n == want.n == 3
    assert got.slope() == pytest.approx(110.0) == want.slope()
    assert latest["printer_n"] == 3 and latest["battery_n"] == 3
    # the line kept beside the sums is the one they give, to the last bit
    assert (latest["reader_slope"], latest["reader_intercept"]) == (got.slope(), got.intercept())
    assert latest["battery_slope"] == pytest.approx(1.0)
    assert latest["printer_slope"] == pytest.approx(50.0)


def test_one_sample_is_no_line_and_migration_0010_fills_lines_from_the_sums(
    loaded: Engine,
) -> None:
    a, b = first_deployed(loaded, 2)
    reports = [
        HealthReport(a, health(1000 + 100 * d, 5000 + 7 * d, 10 + d), T0 + timedelta(days=d))
        for d in (0, 3, 11, 12)
    ] + [HealthReport(b, health(40, 50, 1), T0)]
    with loaded.begin() as conn:
        record_health(conn, reports)
    with loaded.connect() as conn:
        before = latest_health(conn, a), latest_health(conn, b)
    assert before[0] is not None and before[1] is not None
    assert before[1]["reader_n"] == 1 and before[1]["reader_slope"] is None
    assert before[1]["reader_intercept"] is None
    db.downgrade(loaded, "0009")
    assert "reader_slope" not in {c["name"] for c in inspect(loaded).get_columns("terminal_health")}
    db.upgrade(loaded)
    with loaded.connect() as conn:
        after = latest_health(conn, a), latest_health(conn, b)
    assert after == before  # the same numbers the ingest kept, recomputed from the sums


def test_a_newly_tripped_tamper_switch_is_flagged_at_once(loaded: Engine) -> None:
    a, b = first_deployed(loaded, 2)
    with loaded.begin() as conn:  # a baseline of P1 terminals exists
        conn.execute(FLAGS.insert().values(serial=b, priority=1, flagged_at=T0, replace_by=None))
        record_health(conn, [HealthReport(a, health(10, 10, 1), T0)])
        tripped = T0 + timedelta(hours=5)
        newly = record_health(
            conn, [HealthReport(a, health(11, 11, 1, tampered=tripped), T0 + timedelta(hours=6))]
        )
        again = record_health(
            conn, [HealthReport(a, health(12, 12, 1, tampered=tripped), T0 + timedelta(hours=7))]
        )
    assert newly == [a] and again == []
    with loaded.connect() as conn:
        events = conn.execute(select(EVENTS).where(EVENTS.c.kind == "terminal.flagged")).all()
        flagged = set(conn.execute(select(FLAGS.c.serial)).scalars())
    assert len(events) == 1 and events[0].payload["serial"] == a
    assert events[0].payload["reasons"] == ["tamper"] and flagged == {a, b}


def test_health_poll_over_tcp_stores_samples_and_sees_a_tamper(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "master.key"
    generate_master_key_file(key)
    manifest = tmp_path / "fleet.csv"
    serials = write_possim_manifest(loaded, manifest, 3)
    proc = subprocess.Popen(
        [*POSSIM, "fleet", "--key-file", str(key), "--state-dir", str(tmp_path / "st"),
         "--manifest", str(manifest), "--wear-profile", "mixed"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    runner = CliRunner()
    try:
        assert proc.stdout is not None
        urls = {}
        for line in proc.stdout:
            words = line.split()
            if words == ["READY", "ALL"]:
                break
            urls[words[1]] = words[2]
        for s in serials:
            res = runner.invoke(app, ["--db", db_url, "terminals", "update", s, "--link", urls[s]])
            assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["--db", db_url, "health", "poll", "--format", "json", *serials])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        assert [d["serial"] for d in doc] == serials and all(d["ok"] for d in doc)
        tamper = subprocess.run(
            [*POSSIM, "tamper", "--state-dir", str(tmp_path / "st" / serials[1])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert tamper.returncode == 0, tamper.stderr
        res = runner.invoke(app, ["--db", db_url, "health", "poll", "--sign-on", *serials])
        assert res.exit_code == 0, res.output
        assert "3 of 3 terminals polled; 1 tampered" in res.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    with loaded.connect() as conn:
        counts = dict(
            conn.execute(
                select(HEALTH_SAMPLES.c.serial, func.count()).group_by(HEALTH_SAMPLES.c.serial)
            ).all()
        )
        latest = latest_health(conn, serials[1])
    assert counts == {s: 2 for s in serials}
    assert latest is not None and latest["tamper"] and latest["samples"] == 2
    res = runner.invoke(app, ["--db", db_url, "health", "show", serials[1], "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["tamper"] for r in rows] == ["TRIPPED", "intact"]
    res = runner.invoke(app, ["--db", db_url, "terminals", "show", serials[1], "-f", "json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)["health"]
    assert shown["tamper"] is True and shown["samples"] == 2
    assert {w["counter"] for w in shown["wear"]} >= {"reader", "printer"}
    res = runner.invoke(app, ["--db", db_url, "terminals", "show", serials[1]])
    assert res.exit_code == 0 and "TRIPPED" in res.stdout and "2 samples" in res.stdout
    res = runner.invoke(app, ["--db", db_url, "health", "poll", "PSNOSUCH"])
    assert res.exit_code != 0 and "unknown terminal PSNOSUCH" in res.output


def test_health_import_is_checked_whole_and_feeds_the_history(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    a, b = first_deployed(loaded, 2)
    good = tmp_path / "health.csv"
    good.write_text(
        "serial,at,chip,contactless,magstripe,printer_lines,battery_level,battery_health,"
        "battery_cycles,tampered\n"
        f"{a},2026-10-01T00:00:00Z,1000,5,0,100,90,99,10,no\n"
        f"{a},2026-10-11T00:00:00Z,2000,5,0,200,90,99,11,no\n"
        f"{b},2026-10-11T00:00:00+08:00,7,0,0,,,,,yes\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "serial,at,chip,contactless,magstripe,battery_level,battery_health,battery_cycles\n"
        "PSNOSUCH1,2026-10-01T00:00:00Z,1,0,0,,,\n"
        f"{a},2026-10-01T00:00:00,1,0,0,,,\n"
        f"{a},2026-10-02T00:00:00Z,1,0,0,101,99,3\n"
        f"{a},2026-10-03T00:00:00Z,1,0,0,50,,\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["--db", db_url, "health", "import", str(bad)])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "bad.csv:2" in text and "unknown terminal PSNOSUCH1" in text
    assert "bad.csv:3" in text and "no time zone offset" in text
    assert "bad.csv:4" in text and "bad.csv:5" in text and "go together" in text
    with loaded.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HEALTH_SAMPLES)).scalar_one() == 0
    res = runner.invoke(app, ["--db", db_url, "health", "import", str(good)])
    assert res.exit_code == 0 and "3 health samples stored" in res.stdout, res.output
    res = runner.invoke(app, ["--db", db_url, "health", "import", str(good)])
    assert "0 health samples stored" in res.stdout  # the same samples again: skipped
    with loaded.connect() as conn:
        latest = latest_health(conn, a)
        tampered = latest_health(conn, b)
    assert latest is not None and latest["samples"] == 2 and latest["reader"] == 2000
    assert latest["reader_n"] == 2 and tampered is not None and tampered["tamper"]
    assert latest["reader_slope"] == pytest.approx(100.0)  # 1,000 reads in 10 days


def test_two_pollers_storing_one_terminal_at_once_both_count(loaded: Engine) -> None:
    """The second writer waits for the first and adds to its sums (on PostgreSQL it would
    otherwise insert the terminal's first summary row a second time, or lose a sample)."""
    (serial,) = first_deployed(loaded)
    first_stored, errors = threading.Event(), []

    def poller(day: int, hold: threading.Event | None) -> None:
        try:
            with writer(loaded).begin() as conn:
                record_health(
                    conn,
                    [HealthReport(serial, health(100 * day, 0, day), T0 + timedelta(days=day))],
                )
                if hold is not None:
                    first_stored.set()
                    hold.wait(5)
        except Exception as exc:
            errors.append(exc)

    release = threading.Event()
    a = threading.Thread(target=poller, args=(1, release))
    a.start()
    assert first_stored.wait(10)
    b = threading.Thread(target=poller, args=(3, None))
    b.start()
    b.join(0.5)  # b waits for a's transaction
    release.set()
    a.join(10)
    b.join(10)
    assert errors == []
    with loaded.connect() as conn:
        latest = latest_health(conn, serial)
    assert latest is not None and latest["samples"] == 2 and latest["reader_n"] == 2
    want = Fit.of([(days(T0 + timedelta(days=d)), 110.0 * d) for d in (1, 3)])
    assert latest["reader_sy"] == want.sy and latest["reader_slope"] == pytest.approx(110.0)
