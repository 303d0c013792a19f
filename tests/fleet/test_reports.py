"""`posfleet report …`: the pure builders, masking, and the CLI's CSV/JSON (against golden
files made from a tiny hand-built fleet), table, HTML, --out and bad usage; SQLite and
PostgreSQL.

Regenerate the golden files after an intended change with
``POSFLEET_UPDATE_GOLDEN=1 .venv/bin/pytest tests/fleet/test_reports.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.fees import Group
from fleet.inventory import import_catalog, import_merchants, import_terminals, set_links
from fleet.models import ATTEMPTS, JOBS, ROLLOUTS
from fleet.policy import FeePolicy, RolloutPolicy
from fleet.publishing import publish
from fleet.reports import build, data, mask_phone, mask_phones, render
from fleet.reports.build import RolloutRow, age_histogram, age_years
from fleet.rollout import create

GOLDEN = Path(__file__).with_name("golden")
AS_OF = "2026-11-01"
CREATED = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
ERR_REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"
ERR_SALE = "test sale fee 61 with table v1, the fleet computes 60"

CATALOG = """
[[models]]
code = "AB-1"
vendor = "Acme & <Sons>"
end_of_support = 2030-12-31
pts_version = "6.x"
pts_expires_on = 2030-04-30
chip = true
contactless = true
unit_price = "100.00"

[[models]]
code = "OLD-9"
vendor = "Oldco"
end_of_support = 2025-06-30
pts_version = "4.x"
pts_expires_on = 2025-01-31
chip = true
unit_price = "50.00"
successor = "AB-1"

[[models]]
code = "JP-7"
vendor = "Nippon"
end_of_support = 2031-12-31
pts_version = "6.x"
pts_expires_on = 2031-04-30
chip = true
contactless = true
unit_price = "30000"
currency = "JPY"

[[firmware]]
model = "AB-1"
version = "1.0"
[[firmware]]
model = "AB-1"
version = "0.9"
end_of_support = 2026-01-31
[[firmware]]
model = "OLD-9"
version = "2.0"
end_of_support = 2025-06-30
[[firmware]]
model = "JP-7"
version = "1.0"
"""

MERCHANTS = """id,name,mcc,phone,country
M1,Shanghai Noodles,5814,+8613812345678,CN
M2,Berlin Grocer,5411,+4915112345678,DE
M3,Tokyo Taxi,4121,,JP
"""

# serial, model, firmware, merchant, made, status, faults
TERMINALS = [
    ("T1", "AB-1", "1.0", "M1", "2025-12-01", "deployed", 0),
    ("T2", "AB-1", "0.9", "M1", "2024-01-15", "deployed", 0),
    ("T3", "OLD-9", "2.0", "M2", "2018-05-01", "deployed", 0),
    ("T4", "OLD-9", "2.0", "M2", "2019-12-01", "faulty", 6),
    ("T5", "AB-1", "1.0", "", "2026-06-01", "in_stock", 0),
    ("T6", "JP-7", "1.0", "M3", "2019-01-01", "deployed", 0),
    ("T7", "AB-1", "1.0", "M1", "2017-01-01", "retired", 0),
]

FEE_TABLE = """name = "reports"
currency = "CNY"
effective = 2026-10-01T00:00:00+08:00
[[rules]]
card = "any"
rate = "0.38%"
"""


def seed_rollout(
    engine: Engine,
    serials: Sequence[str],
    tmp_path: Path,
    waves: tuple[int, ...] = (200_000, 600_000, 1_000_000),
) -> int:
    """Publish a table, link ``serials``, roll it out, and put the jobs in every state:
    wave 1 done; wave 2 alternately done and failed (refused); wave 3: the first waiting to
    retry after the same refusal, the second failed on the test sale, the rest pending."""
    path = tmp_path / "reports-fee.toml"
    path.write_text(FEE_TABLE)
    publish(engine, path, actor="test", policy=FeePolicy(), at=CREATED)
    set_links(engine, dict.fromkeys(serials, "socket://127.0.0.1:9"), actor="test")
    rollout_id, _ = create(
        engine, 1, group=Group(), policy=RolloutPolicy(), actor="test", waves=waves
    )
    with engine.begin() as conn:
        conn.execute(
            update(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id).values(created_at=CREATED, wave=2)
        )
        jobs = conn.execute(
            select(JOBS.c.id, JOBS.c.wave, JOBS.c.serial)
            .where(JOBS.c.rollout_id == rollout_id)
            .order_by(JOBS.c.wave, JOBS.c.id)
        ).all()
        index: dict[int, int] = {}
        for job_id, wave, serial in jobs:
            i = index[wave] = index.get(wave, -1) + 1
            if wave == 0 or (wave == 1 and i % 2 == 0):
                status, error, outcomes = "done", None, ["pushed"]
            elif wave == 1:
                status, error, outcomes = "failed", ERR_REFUSED, ["error", "error"]
            elif i == 0:
                status, error, outcomes = "pending", ERR_REFUSED, ["error"]
            elif i == 1:
                status, error, outcomes = "failed", ERR_SALE, ["error"]
            else:
                status, error, outcomes = "pending", None, []
            conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(status=status, last_error=error, attempts=len(outcomes))
            )
            for outcome in outcomes:
                conn.execute(
                    insert(ATTEMPTS).values(
                        job_id=job_id,
                        serial=serial,
                        version=1,
                        worker="w",
                        started_at=CREATED,
                        finished_at=CREATED,
                        outcome=outcome,
                        error=error if outcome == "error" else None,
                    )
                )
    return rollout_id


@pytest.fixture
def tiny(engine: Engine, tmp_path: Path) -> Engine:
    """Seven terminals, three models (one in JPY), three merchants, one rollout of five."""
    (tmp_path / "catalog.toml").write_text(CATALOG)
    (tmp_path / "merchants.csv").write_text(MERCHANTS)
    lines = [
        "serial,model,firmware,tid,mid,merchant_id,manufactured_on,deployed_on,status,link,"
        "fault_count"
    ]
    for i, (serial, model, fw, merchant, made, status, faults) in enumerate(TERMINALS):
        ids = f"X{i:07d},M{i:014d}" if merchant else ","
        deployed = "2026-06-15" if merchant else ""
        lines.append(f"{serial},{model},{fw},{ids},{merchant},{made},{deployed},{status},,{faults}")
    (tmp_path / "terminals.csv").write_text("\n".join(lines) + "\n")
    import_catalog(engine, tmp_path / "catalog.toml", actor="test")
    import_merchants(engine, tmp_path / "merchants.csv", actor="test")
    import_terminals(engine, tmp_path / "terminals.csv", actor="test")
    seed_rollout(engine, ["T1", "T2", "T3", "T4", "T6"], tmp_path)
    return engine


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("POSFLEET_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with POSFLEET_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def _shape(value: Any) -> Any:
    """Keys and types, not values: what a consumer of the JSON relies on."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


# -- pure ----------------------------------------------------------------------------------


def test_mask_phone() -> None:
    assert mask_phone("+8613812345678") == "+86 138****5678"
    assert mask_phone("+4915112345678") == "+49 151****5678"
    for number in ("+8613812345678", "+353871234567", "+6591234567", "+12025550123", "+1"):
        masked = mask_phone(number)
        assert number[1:] not in masked.replace(" ", "")
        assert masked.count("*") == 4  # the length is not given away either
    assert mask_phone("not a phone") == "****ne"
    assert mask_phones("call +8613812345678 or +4915112345678.") == (
        "call +86 138****5678 or +49 151****5678."
    )
    assert mask_phones("order 12345678901234") == "order 12345678901234"


def test_age_bucketing() -> None:
    assert age_years(date(2024, 2, 29), date(2025, 2, 28)) == 0
    assert age_years(date(2024, 2, 29), date(2025, 3, 1)) == 1
    h = age_histogram(
        [(date(2026, 10, 31), 1), (date(2019, 11, 1), 2), (date(2027, 1, 1), 4), (None, 8)],
        date(2026, 11, 1),
    )
    assert h.buckets == (1, 0, 0, 0, 0, 0, 0, 2)
    assert (h.unknown, h.not_yet_made) == (8, 4)
    assert age_histogram([], date(2026, 11, 1)).buckets == ()


def test_rollout_builder_groups_errors_and_masks_phones() -> None:
    r = RolloutRow(7, 3, "halted", 1, (100_000, 1_000_000), 50_000, {}, CREATED, "ops")
    report = build.rollout_report(
        [r],
        [(7, 0, "done", 1), (7, 1, "failed", 3), (7, 1, "pending", 2)],
        [(7, "gateway +8613812345678 busy", 1, 2, "S2"), (7, ERR_REFUSED, 2, 0, "S1")],
        [(7, 9, 6)],
        date(2026, 11, 1),
    )
    failures = report.section("failures").rows
    assert [f["error"] for f in failures] == ["gateway +86 138****5678 busy", ERR_REFUSED]
    waves = report.section("waves").rows
    assert [(w["wave"], w["done"], w["failed"], w["pending"]) for w in waves] == [
        (1, 1, 0, 0),
        (2, 0, 3, 2),
    ]
    (row,) = report.section("rollouts").rows
    assert (row["wave"], row["attempts"], row["attempt_errors"]) == ("2 of 2", 9, 6)
    (chart,) = report.charts
    assert chart.categories == ("wave 1 (10%)", "wave 2 (100%)") and chart.stacked


def test_cli_does_not_import_matplotlib() -> None:
    code = "import sys, fleet.cli; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- against the database ------------------------------------------------------------------


def test_golden_csv_and_json(tiny: Engine, db_url: str, tmp_path: Path) -> None:
    for name in ("fleet", "replacements", "rollout"):
        res = _run("--db", db_url, "report", name, "--as-of", AS_OF, "--format", "csv")
        assert res.exit_code == 0, res.output
        _golden(f"{name}.csv", res.stdout)
        out = tmp_path / f"{name}.json"
        res = _run(
            "--db", db_url, "report", name, "--as-of", AS_OF, "-f", "json", "--out", str(out)
        )
        assert res.exit_code == 0, res.output
        assert f"written to {out}" in res.stderr
        doc = json.loads(out.read_text())
        _golden(f"{name}.json", out.read_text())
        assert list(doc)[:5] == ["report", "title", "as_of", "params", "summary"]
        assert doc["report"] == name and doc["as_of"] == AS_OF


def test_json_shapes(tiny: Engine, db_url: str) -> None:
    docs = {
        name: json.loads(
            _run("--db", db_url, "report", name, "--as-of", AS_OF, "-f", "json").stdout
        )
        for name in ("fleet", "replacements", "rollout")
    }
    fleet, repl, roll = docs["fleet"], docs["replacements"], docs["rollout"]
    assert list(fleet)[5:] == ["models", "firmware", "age"]
    assert _shape(fleet["firmware"]) == [
        {
            "model": "str",
            "firmware": "str",
            "terminals": "int",
            "end_of_support": "str",
            "supported": "bool",
        }
    ]
    assert fleet["summary"]["by_status"] == {
        "in_stock": 1,
        "deployed": 4,
        "faulty": 1,
        "swapped_out": 0,
        "retired": 1,
    }
    # whole years on 2026-11-01: T1 0, T5 0, T2 2, T4 6, T6 7, T3 8 (retired T7 not counted)
    assert [a["terminals"] for a in fleet["age"]] == [2, 0, 1, 0, 0, 0, 1, 1, 1]
    # money: integer minor units beside the currency, never a float
    t3 = next(t for t in repl["terminals"] if t["serial"] == "T3")
    assert (t3["cost_minor"], t3["currency"], t3["replacement_model"]) == (10000, "EUR", "AB-1")
    assert t3["merchant_phone"] == "+49 151****5678"
    assert t3["replace_by"] == AS_OF and t3["reasons"][0] == "age"
    t6 = next(t for t in repl["terminals"] if t["serial"] == "T6")
    assert (t6["cost_minor"], t6["currency"], t6["merchant_phone"]) == (30000, "JPY", None)
    assert {c["currency"]: c["cost_minor"] for c in repl["summary"]["cost"]} == {
        "EUR": 30000,
        "JPY": 30000,
    }
    assert sorted(roll["summary"]["jobs"].items()) == sorted(
        {"done": 2, "running": 0, "pending": 1, "failed": 2, "cancelled": 0}.items()
    )
    assert [(f["error"], f["failed"], f["retrying"]) for f in roll["failures"]] == [
        (ERR_REFUSED, 1, 1),
        (ERR_SALE, 1, 0),
    ]
    assert roll["rollouts"][0]["created_at"] == "2026-10-20T08:00:00+00:00"
    assert (roll["rollouts"][0]["attempts"], roll["rollouts"][0]["attempt_errors"]) == (6, 4)
    assert all("+8613812345678" not in json.dumps(d) for d in docs.values())


def test_table_output_and_out_file(tiny: Engine, db_url: str, tmp_path: Path) -> None:
    res = _run("--db", db_url, "report", "fleet", "--as-of", AS_OF)
    assert res.exit_code == 0, res.output
    for text in ("Fleet as of 2026-11-01", "Terminals by model and status", "Acme &", "<Sons>"):
        assert text in res.stdout, res.stdout
    assert re.search(r"│ 0-1\s+│\s+0 │\s+1 │\s+2 │", res.stdout)
    res = _run("--db", db_url, "report", "replacements", "--as-of", AS_OF, "--limit", "2")
    assert res.exit_code == 0, res.output
    assert "first 2 of 4 by priority" in res.stdout
    assert "+86 138****5678" in res.stdout and "13812345678" not in res.stdout
    assert "Forecast by quarter" in res.stdout and "30000" in res.stdout
    out = tmp_path / "rollout.txt"
    res = _run("--db", db_url, "report", "rollout", "--as-of", AS_OF, "--out", str(out))
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "\x1b[" not in text and "Progress per wave" in text and ERR_SALE in text
    res = _run("--db", db_url, "report", "rollout", "--as-of", "2026-10-19", "-f", "csv")
    assert res.stdout.splitlines()[1:] == []  # created on the 20th


def test_html(tiny: Engine, db_url: str, tmp_path: Path) -> None:
    for name, charts in (("fleet", 2), ("replacements", 2), ("rollout", 1)):
        out = tmp_path / f"{name}.html"
        res = _run("--db", db_url, "report", name, "--as-of", AS_OF, "-f", "html", "-o", str(out))
        assert res.exit_code == 0, res.output
        html = out.read_text()
        assert html.startswith("<!DOCTYPE html>") and "@media print" in html
        assert html.count("<svg ") == charts and "<?xml" not in html and "<metadata>" not in html
        for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "@font-face"):
            assert forbidden not in html.lower(), (name, forbidden)
        # references stay inside the file: url(#clip) and href="#marker" from the charts
        refs = re.findall(r"url\(\s*['\"]?([^)'\"]*)", html)
        refs += re.findall(r"\b(?:xlink:)?(?:href|src)\s*=\s*['\"]([^'\"]*)", html)
        assert refs and all(ref.startswith("#") for ref in refs), (name, refs)
        # the only URLs are the SVG namespaces (names, never fetched)
        assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {
            "http://www.w3.org/2000/svg",
            "http://www.w3.org/1999/xlink",
        }
        ids = re.findall(r'\bid="([^"]+)"', html)
        assert len(ids) == len(set(ids)), "duplicate ids across the inline charts"
    fleet = (tmp_path / "fleet.html").read_text()
    assert "Acme &amp; &lt;Sons&gt;" in fleet and "<Sons>" not in fleet
    repl = (tmp_path / "replacements.html").read_text()
    assert "+86 138****5678" in repl and "13812345678" not in repl


def test_bad_usage_exits_2_failures_exit_1(tiny: Engine, db_url: str, tmp_path: Path) -> None:
    base = ["--db", db_url, "report"]
    for args in (
        ["fleet", "--format", "xml"],
        ["fleet", "--as-of", "2026-13-01"],
        ["replacements", "--horizon", "soon"],
        ["replacements", "--limit", "0"],
        ["rollout", "--rollout", "x"],
        ["fleet", "--out", str(tmp_path / "nope" / "f.csv")],
        ["notices"],
    ):
        res = _run(*base, *args)
        assert res.exit_code == 2, (args, res.output)
    res = _run(*base, "fleet", "--format", "xml")
    assert res.stderr.strip().count("\n") == 0 and "--format must be one of" in res.stderr
    res = _run(*base, "rollout", "--rollout", "1", "--rollout", "99", "--as-of", AS_OF)
    assert res.exit_code == 1 and "no rollout 99 created by 2026-11-01" in res.stderr
    policy = tmp_path / "p.toml"
    policy.write_text("[replacement]\nrequire = ['wifi']\n")
    res = _run("--db", db_url, "--policy", str(policy), "report", "replacements")
    assert res.exit_code == 1 and "unknown capability 'wifi'" in res.stderr
    res = _run("--db", str(tmp_path / "missing" / "x.db"), "report", "fleet")
    assert res.exit_code == 1 and res.stderr.startswith("error:")


def test_rollout_filter(tiny: Engine, db_url: str) -> None:
    res = _run("--db", db_url, "report", "rollout", "-r", "1", "--as-of", AS_OF, "-f", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["params"]["rollouts"] == [1] and [w["wave"] for w in doc["waves"]] == [1, 2, 3]
    assert [w["terminals"] for w in doc["waves"]] == [1, 2, 2]


def test_queries_aggregate_in_the_database(loaded: Engine) -> None:
    """The fleet report reads ``terminal`` twice, grouped each time: no row per terminal."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(loaded, "before_cursor_execute", record)
    try:
        report = data.fleet(loaded, date(2026, 11, 1))
        data.rollout(loaded, date(2026, 11, 1))
    finally:
        event.remove(loaded, "before_cursor_execute", record)
    selects = [s for s in statements if re.search(r"\bFROM TERMINAL\b", s)]
    assert len(selects) == 2 and all("GROUP BY" in s for s in selects), selects
    assert sum(r["total"] for r in report.section("models").rows) == 300
    assert render.json_doc(report)["summary"]["terminals"] == 300
