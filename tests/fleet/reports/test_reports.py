"""`posfleet report …`: the pure builders, masking, and the CLI's CSV/JSON (against golden
files made from a tiny hand-built fleet with its notices and messages), table, HTML, --out
and bad usage; SQLite and PostgreSQL.

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
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core import masking
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import ATTEMPTS, JOBS, MESSAGES, NOTICES, ROLLOUTS
from fleet.core.policy import FeePolicy, RolloutPolicy
from fleet.fees.publishing import publish
from fleet.fees.tablefile import Group
from fleet.inventory import import_catalog, import_merchants, import_terminals, set_links
from fleet.notices import verify as notices
from fleet.reports import (
    REPORTS,
    Chart,
    NoticeFilter,
    Series,
    fleet_report,
    mask_phone,
    mask_phones,
    render,
    rollout_report,
)
from fleet.reports.fleet import age_histogram, age_years
from fleet.reports.notices import NoticeAggregates, build_notices
from fleet.reports.periods import period_unit, periods
from fleet.reports.rollout import RolloutAggregates, RolloutRow, build_rollout
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

# M2 and M3 have no country: the fleet does not know their currency, so the CNY table of
# the rollout (fleet.fees.targets) covers them as it covers M1 in China.
MERCHANTS = """id,name,mcc,phone,country
M1,Shanghai Noodles,5814,+8613812345678,CN
M2,Berlin Grocer,5411,+4915112345678,
M3,Tokyo Taxi,4121,,
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

# The whole contact data of the tiny fleet: none of it may appear in any report.
PHONES = ("+8613812345678", "+4915112345678")
EMAIL = "ana.li@example.com"
ERR_GATEWAY = "SMS gateway rejected +4915112345678: number unreachable"
ERR_BUSY = "HTTP 503 from the SMS gateway: try later"
ERR_SMTP = f"550 5.1.1 <{EMAIL}>: Recipient address rejected"
D1 = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
D2 = datetime(2026, 10, 22, 9, 0, tzinfo=UTC)
D3 = datetime(2026, 10, 31, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # after AS_OF: in no notices report
MINUTE = timedelta(minutes=1)

# code, merchant, channel, address, language, kinds, encoding, segments, cost, currency,
# status, attempts, created, sent, error
MESSAGE_ROWS: list[tuple[Any, ...]] = [
    ("A1AAA-00001", "M1", "sms", PHONES[0], "zh-CN", ["fee_change", "swap_planned"], "UCS-2",
     2, 10, "EUR", "sent", 1, D1 + 15 * MINUTE, D1 + 16 * MINUTE, None),
    ("B2BBB-00002", "M2", "sms", PHONES[1], "en", ["fee_change"], "GSM-7",
     1, 5, "EUR", "failed", 5, D1 + 15 * MINUTE, None, ERR_GATEWAY),
    ("C3CCC-00003", "M3", "email", EMAIL, "en", ["fee_change"], None,
     None, None, None, "sent", 1, D1 + 15 * MINUTE, D1 + 16 * MINUTE, None),
    ("D4DDD-00004", "M2", "sms", PHONES[1], "en", ["swap_done"], "GSM-7",
     1, 5, "EUR", "ready", 1, D2 + 15 * MINUTE, None, ERR_BUSY),
    ("E5EEE-00005", "M1", "call", PHONES[0], "zh-CN", ["swap_done"], None,
     None, None, None, "sent", 1, D2 + 15 * MINUTE, D2 + 16 * MINUTE, None),
    ("F6FFF-00006", "M3", "email", EMAIL, "en", ["swap_planned"], None,
     None, None, None, "failed", 1, D2 + 15 * MINUTE, None, ERR_SMTP),
    ("G7GGG-00007", "M1", "sms", PHONES[0], "zh-CN", ["follow_up"], "UCS-2",
     3, 36, "CNY", "sending", 2, D3 + 60 * MINUTE, None, ERR_BUSY),
    ("H8HHH-00008", "M2", "sms", PHONES[1], "en", ["fee_change"], "GSM-7",
     1, 5, "EUR", "sent", 1, LATER + 20 * MINUTE, LATER + 21 * MINUTE, None),
]  # fmt: skip

# kind, merchant, ref, created, status, message code, forced channel, not before, note
NOTICE_ROWS: list[tuple[Any, ...]] = [
    ("fee_change", "M1", "fee:1", D1, "sent", "A1AAA-00001", None, None, None),
    ("swap_planned", "M1", "swap:1", D1 + 5 * MINUTE, "sent", "A1AAA-00001", None, None, None),
    ("fee_change", "M2", "fee:1", D1, "failed", "B2BBB-00002", None, None, None),
    ("fee_change", "M3", "fee:1", D1, "sent", "C3CCC-00003", None, None, None),
    ("swap_done", "M2", "swap:2", D2, "composed", "D4DDD-00004", None, None, None),
    ("swap_done", "M1", "swap:3", D2, "sent", "E5EEE-00005", None, None, None),
    ("swap_planned", "M3", "swap:4", D2, "failed", "F6FFF-00006", None, None, None),
    ("follow_up", "M1", "swap:5", D3, "composed", "G7GGG-00007", None, None, None),
    ("follow_up", "M2", "swap:2", D2, "queued", None, "call",
     datetime(2026, 11, 5, 2, 0, tzinfo=UTC), None),
    ("follow_up", "M3", "swap:4", D2, "cancelled", None, None, None,
     "opted out of every channel"),
    ("swap_done", "M3", "swap:6", D3 + 120 * MINUTE, "failed", None, None, None,
     "no contact data"),
    ("fee_change", "M1", "fee:2", D3 + 899 * MINUTE, "queued", None, None, None, None),
    ("fee_change", "M2", "fee:2", LATER, "sent", "H8HHH-00008", None, None, None),
]  # fmt: skip

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


def seed_notices(engine: Engine) -> None:
    """The notices and messages of :data:`NOTICE_ROWS` and :data:`MESSAGE_ROWS`, as they
    would be after composing and sending (fixed codes and instants, for the golden files).
    The fee-table publication queued the ``fee:1`` notices already: they are updated."""
    with engine.begin() as conn:
        ids: dict[str, int] = {}
        for row in MESSAGE_ROWS:
            code, merchant, channel, address, language, kinds, encoding = row[:7]
            segments, cost, currency, status, attempts, created, sent, error = row[7:]
            conn.execute(
                insert(MESSAGES).values(
                    code=code, merchant_id=merchant, channel=channel, address=address,
                    language=language, kinds=kinds, subject="", body="…",
                    sms_encoding=encoding, segments=segments, cost=cost,
                    cost_currency=currency, status=status, attempts=attempts,
                    not_before=created + 30 * MINUTE if status == "ready" else created,
                    created_at=created, sent_at=sent, error=error,
                )
            )  # fmt: skip
            ids[code] = conn.execute(
                select(MESSAGES.c.id).where(MESSAGES.c.code == code)
            ).scalar_one()
        for kind, merchant, ref, created, status, code, channel, not_before, note in NOTICE_ROWS:
            values = {
                "created_at": created, "status": status, "not_before": not_before,
                "channel": channel, "message_id": ids[code] if code else None, "note": note,
            }  # fmt: skip
            event = (
                NOTICES.c.kind == kind,
                NOTICES.c.merchant_id == merchant,
                NOTICES.c.ref == ref,
            )
            # publishing the fee table queued fee:1 to every merchant: those move on
            if not conn.execute(update(NOTICES).where(*event).values(**values)).rowcount:
                conn.execute(
                    insert(NOTICES).values(
                        kind=kind, merchant_id=merchant, ref=ref, payload={}, **values
                    )
                )


@pytest.fixture
def tiny(engine: Engine, tmp_path: Path) -> Engine:
    """Seven terminals, three models (one in JPY), three merchants, one rollout of five,
    thirteen notices (one created after ``AS_OF``) in eight messages."""
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
    seed_notices(engine)
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
    # one masker: the notices' (notices list, verify) is the reports' own
    assert notices.mask_address is masking.mask_address
    assert notices.mask_address("+8613812345678") == mask_phone("+8613812345678")
    assert notices.mask_address(EMAIL) == "a***@example.com"
    assert masking.redact_addresses(f"{ERR_SMTP}; {ERR_GATEWAY}; +86 138****5678") == (
        "550 5.1.1 <[email]>: Recipient address rejected; "
        "SMS gateway rejected [phone]: number unreachable; +86 138****5678"
    )


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
    report = build_rollout(
        RolloutAggregates(
            [r],
            [(7, 0, "done", 1), (7, 1, "failed", 3), (7, 1, "pending", 2)],
            [(7, "gateway +8613812345678 busy", 1, 2, "S2"), (7, ERR_REFUSED, 2, 0, "S1")],
            [(7, 9, 6)],
        ),
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


def test_notices_builder_groups_masks_and_buckets() -> None:
    at = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)
    agg = NoticeAggregates(
        by_kind=[
            ("follow_up", "call", "queued", 1, at, at),
            ("fee_change", None, "failed", 2, at, at),
            ("fee_change", "sms", "sent", 5, at, at),
            ("fee_change", "email", "sent", 3, at, at),
        ],
        per_day=[
            (date(2026, 10, 20), "sent", 8),
            (date(2026, 3, 2), "failed", 2),
            (date(2026, 10, 20), "queued", 1),
        ],
        held=(1, datetime(2026, 11, 5, 2, 0, tzinfo=UTC)),
        messages=[
            ("sms", "sent", "en", "EUR", 4, 4, 5, 25),
            ("sms", "failed", "en", "EUR", 2, 10, 2, 10),
            ("sms", "ready", "zh-CN", "CNY", 1, 1, 3, 36),
            ("email", "sent", "en", None, 3, 3, None, None),
        ],
        sms_per_day=[(date(2026, 10, 20), "sent", "EUR", 4, 5, 25)],
        message_errors=[
            ("sms", "rejected +8613812345678", 1, 0, "K2"),
            ("sms", "rejected +4915112345678", 1, 0, "K1"),  # the same once redacted
            ("sms", "HTTP 503", 0, 1, "K3"),
        ],
        notice_failures=[("no contact data", 2, "M9")],
        examples={"K1": ("M2", "+4915112345678"), "K3": ("M1", "ana@example.com")},
    )
    report = build_notices(agg, NoticeFilter(date(2026, 11, 1)))
    assert report.main == "by_kind" and report.name == "notices"
    rows = report.section("by_kind").rows
    assert [(r["kind"], r["channel"], r["status"]) for r in rows] == [
        ("fee_change", "sms", "sent"),
        ("fee_change", "email", "sent"),
        ("fee_change", None, "failed"),
        ("follow_up", "call", "queued"),
    ]
    doc = render.json_doc(report)
    summary = doc["summary"]
    assert summary["notices"] == 11 and summary["by_status"]["sent"] == 8
    assert summary["held"] == {"notices": 1, "next_due": "2026-11-05T02:00:00+00:00"}
    assert summary["messages_by_channel"] == {"sms": 7, "email": 3, "call": 0}
    assert summary["waiting"] == {"messages": 1, "retrying": 1}
    assert summary["sms"] == {
        "messages": 7,
        "segments": 10,
        "cost": [{"currency": "CNY", "cost_minor": 36}, {"currency": "EUR", "cost_minor": 35}],
    }
    assert summary["sms_sent_cost"] == [{"currency": "EUR", "cost_minor": 25}]
    assert {f.key: f.text for f in report.summary}["sms"] == (
        "7 messages, 10 segments, 0.36 CNY; 0.35 EUR"
    )
    failures = doc["failures"]
    assert [(f["source"], f["error"], f["failed"], f["retrying"]) for f in failures] == [
        ("message", "rejected [phone]", 2, 0),
        ("notice", "no contact data", 2, 0),
        ("message", "HTTP 503", 0, 1),
    ]
    assert (failures[0]["example"], failures[0]["merchant"], failures[0]["to"]) == (
        "K1",
        "M2",
        "+49 151****5678",
    )
    assert failures[2]["to"] == "a***@example.com" and failures[1]["merchant"] == "M9"
    # March to October: the chart over time goes per ISO week, empty weeks included
    over_time = report.charts[0]
    assert over_time.key == "notices_over_time" and over_time.title == "Notices per week"
    assert over_time.categories[0] == "2026-W10" and over_time.categories[-1] == "2026-W43"
    assert len(over_time.categories) == 34
    assert [s.name for s in over_time.series] == ["queued", "sent", "failed"]
    assert sum(sum(s.values) for s in over_time.series) == 11
    assert [c.key for c in report.charts] == [
        "notices_over_time",
        "notices_by_kind",
        "messages_by_channel",
        "sms_segments",
    ]
    assert period_unit(date(2026, 10, 1), date(2026, 10, 1)) == "day"
    empty = build_notices(NoticeAggregates(), NoticeFilter(date(2026, 11, 1)))
    assert all(chart.empty for chart in empty.charts)
    assert render.json_doc(empty)["summary"]["by_kind"] == dict.fromkeys(
        ("fee_change", "swap_planned", "swap_done", "follow_up", "scam_warning",
         "opt_out_confirm"), 0
    )  # fmt: skip
    render.html(empty)  # draws "no data"


def test_report_errors_are_fleet_errors_worded_for_the_domain(tiny: Engine) -> None:
    day = date(2026, 11, 1)
    cases: list[tuple[Any, str]] = [
        (lambda: NoticeFilter(day, kinds=("sms",)), "unknown notice kind 'sms' (known: fee_"),
        (lambda: NoticeFilter(day, channels=("fax",)), "unknown notice channel 'fax' (known: "),
        (
            lambda: NoticeFilter(day, since=date(2026, 11, 2)),
            "notices from 2026-11-02 to 2026-11-01: the first day is after the last",
        ),
        (lambda: rollout_report(tiny, day, (1, 98, 99)), "no rollout 98, 99 created by 2026-11-01"),
    ]
    for make, message in cases:
        with pytest.raises(InputError) as caught:
            make()
        assert str(caught.value).startswith(message) and "--" not in str(caught.value)
    with pytest.raises(NotFoundError):
        rollout_report(tiny, day, (99,))
    assert rollout_report(tiny, day, (1,)).params["rollouts"] == [1]
    assert NoticeFilter(day, day, ("fee_change",), ("sms",)).params()["kinds"] == ["fee_change"]


def test_long_periods_label_every_nth_day() -> None:
    from fleet.reports.charts import svg  # noqa: PLC0415 - matplotlib only here

    days = periods(date(2026, 9, 1), date(2026, 10, 31), "day")
    chart = Chart("days", "Notices per day", tuple(days), (Series("sent", (1.0,) * len(days)),))
    drawn = svg(chart)
    labelled = [d for d in days if f">{d}<" in drawn]
    assert labelled[:2] == ["2026-09-01", "2026-09-07"] and 6 < len(labelled) <= 12


def test_cli_does_not_import_matplotlib() -> None:
    code = "import sys, fleet.cli, fleet.reports; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# -- against the database ------------------------------------------------------------------


def test_golden_csv_and_json(tiny: Engine, db_url: str, tmp_path: Path) -> None:
    for name in REPORTS:
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
            "open_advisories": [],
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
    for name, charts in (("fleet", 2), ("replacements", 2), ("rollout", 1), ("notices", 4)):
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
        ["outbox"],
        ["notices", "--format", "xml"],
        ["notices", "--kind", "sms"],
        ["notices", "--channel", "fax"],
        ["notices", "--since", "2026-10-32"],
        ["notices", "--since", "2026-11-02", "--as-of", AS_OF],
    ):
        res = _run(*base, *args)
        assert res.exit_code == 2, (args, res.output)
    res = _run(*base, "fleet", "--format", "xml")
    assert res.stderr.strip().count("\n") == 0 and "--format must be one of" in res.stderr
    res = _run(*base, "notices", "--kind", "fee_change", "--kind", "sms")
    assert "--kind must be one of fee_change, swap_planned" in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "not 'sms'" in res.stderr
    res = _run(*base, "notices", "--since", "2026-11-02", "--as-of", AS_OF)
    assert "--since 2026-11-02 is after --as-of 2026-11-01" in res.stderr
    res = _run(*base, "rollout", "--rollout", "1", "--rollout", "99", "--as-of", AS_OF)
    assert res.exit_code == 2 and "no rollout 99 created by 2026-11-01" in res.stderr
    policy = tmp_path / "p.toml"
    policy.write_text("[replacement]\nrequire = ['wifi']\n")
    res = _run("--db", db_url, "--policy", str(policy), "report", "replacements")
    assert res.exit_code == 2 and "unknown capability 'wifi'" in res.stderr  # bad input
    res = _run("--db", str(tmp_path / "missing" / "x.db"), "report", "fleet")
    assert res.exit_code == 1 and res.stderr.startswith("error:")


def test_notices_report(tiny: Engine, db_url: str) -> None:
    def doc(*args: str) -> Any:
        res = _run("--db", db_url, "report", "notices", "--as-of", AS_OF, "-f", "json", *args)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    report = doc()
    assert list(report)[5:] == ["by_kind", "messages", "per_day", "sms_per_day", "failures"]
    summary = report["summary"]
    # 13 notices, one created after AS_OF (and its message, composed after it, too)
    assert summary["notices"] == 12
    assert summary["by_status"] == {
        "queued": 2, "composed": 2, "sent": 4, "failed": 3, "cancelled": 1,
    }  # fmt: skip
    assert summary["held"] == {"notices": 1, "next_due": "2026-11-05T02:00:00+00:00"}
    assert summary["messages"] == 7
    assert summary["messages_by_channel"] == {"sms": 4, "email": 2, "call": 1}
    assert summary["messages_by_status"] == {"ready": 1, "sending": 1, "sent": 3, "failed": 2}
    assert summary["waiting"] == {"messages": 2, "retrying": 2}
    assert summary["sms"] == {
        "messages": 4,
        "segments": 7,
        "cost": [{"currency": "CNY", "cost_minor": 36}, {"currency": "EUR", "cost_minor": 20}],
    }
    assert summary["sms_sent_cost"] == [{"currency": "EUR", "cost_minor": 10}]
    # a follow-up call task keeps its forced channel; notices without a message have none
    assert {(r["kind"], r["channel"], r["status"]): r["notices"] for r in report["by_kind"]} == {
        ("fee_change", "sms", "sent"): 1,
        ("fee_change", "sms", "failed"): 1,
        ("fee_change", "email", "sent"): 1,
        ("fee_change", None, "queued"): 1,
        ("swap_planned", "sms", "sent"): 1,
        ("swap_planned", "email", "failed"): 1,
        ("swap_done", "sms", "composed"): 1,
        ("swap_done", "call", "sent"): 1,
        ("swap_done", None, "failed"): 1,
        ("follow_up", "sms", "composed"): 1,
        ("follow_up", "call", "queued"): 1,
        ("follow_up", None, "cancelled"): 1,
    }
    assert [(d["day"], d["notices"]) for d in report["per_day"]] == [
        ("2026-10-20", 4),
        ("2026-10-22", 5),
        ("2026-10-31", 3),
    ]
    assert [(f["source"], f["error"], f["failed"], f["retrying"], f["to"])
            for f in report["failures"]] == [
        ("message", ERR_BUSY, 0, 2, "+49 151****5678"),
        ("message", "SMS gateway rejected [phone]: number unreachable", 1, 0,
         "+49 151****5678"),
        ("message", "550 5.1.1 <[email]>: Recipient address rejected", 1, 0,
         "a***@example.com"),
        ("notice", "no contact data", 1, 0, None),
    ]  # fmt: skip
    assert report["failures"][0]["example"] == "D4DDD-00004"

    # filters: a period, kinds, channels (a notice's channel is its message's, or forced)
    since = doc("--since", "2026-10-22")
    assert since["summary"]["notices"] == 8 and since["params"]["created_from"] == "2026-10-22"
    assert since["title"] == "Notices from 2026-10-22 to 2026-11-01"
    assert [d["day"] for d in since["per_day"]] == ["2026-10-22", "2026-10-31"]
    follow = doc("--kind", "follow_up", "-k", "swap_done")
    assert follow["summary"]["by_kind"] == {"swap_done": 3, "follow_up": 3}
    assert follow["summary"]["messages_by_channel"] == {"sms": 2, "email": 0, "call": 1}
    calls = doc("--channel", "call")
    assert calls["summary"]["notices"] == 2 and calls["summary"]["messages"] == 1
    assert calls["params"]["channels"] == ["call"] and calls["failures"] == []
    assert doc("--as-of", "2026-10-19")["summary"]["notices"] == 0

    res = _run("--db", db_url, "report", "notices", "--as-of", AS_OF)
    assert res.exit_code == 0, res.output
    for text in ("Notices as of 2026-11-01", "Notices by kind, channel and status",
                 "0.36 CNY; 0.20 EUR", "first due 2026-11-05 02:00 UTC", "Failures by error"):  # fmt: skip
        assert text in res.stdout, (text, res.stdout)


def test_no_report_shows_a_whole_phone_number_or_email(
    tiny: Engine, db_url: str, tmp_path: Path
) -> None:
    """Every format of every report: the contact data of the tiny fleet appears masked,
    never whole (nor its national digits alone, nor the email's local part)."""
    whole = [*PHONES, *(p[3:] for p in PHONES), EMAIL, "ana.li"]
    masked: set[tuple[str, str]] = set()
    for name in REPORTS:
        for fmt in render.FORMATS:
            out = tmp_path / f"{name}.{fmt}"
            res = _run("--db", db_url, "report", name, "--as-of", AS_OF, "-f", fmt, "-o", str(out))
            assert res.exit_code == 0, (name, fmt, res.output)
            text = out.read_text(encoding="utf-8")
            for secret in whole:
                assert secret not in text, (name, fmt, secret)
            if "+49 151****5678" in text:
                masked.add((name, fmt))
    # the replacements show it in every format; the notices in the failures' examples
    # (JSON and HTML: their CSV and terminal table have no addresses)
    assert masked == {("replacements", f) for f in render.FORMATS} | {
        ("notices", "json"),
        ("notices", "html"),
    }


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
        report = fleet_report(loaded, date(2026, 11, 1))
        rollout_report(loaded, date(2026, 11, 1))
    finally:
        event.remove(loaded, "before_cursor_execute", record)
    selects = [s for s in statements if re.search(r"\bFROM TERMINAL\b", s)]
    assert len(selects) == 2 and all("GROUP BY" in s for s in selects), selects
    assert sum(r["total"] for r in report.section("models").rows) == 300
    assert render.json_doc(report)["summary"]["terminals"] == 300
