"""The loop after sending, on SQLite and PostgreSQL: delivery receipts (a monotonic state
machine, duplicates and reordering changing nothing twice), fallbacks (SMS → email →
call task), bounces, the receipt window, replies (STOP/退订, 1/2 on a planned swap,
anything else a call task), the scam radar and scam warnings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.db import writer
from fleet.core.errors import InputError
from fleet.core.models import (
    CALL_TASKS,
    CONTACT_EVENTS,
    EVENTS,
    MERCHANTS,
    MESSAGES,
    NOTICES,
    RECEIPTS,
    SWAPS,
    TERMINALS,
)
from fleet.core.policy import InboundPolicy, Policy
from fleet.notices.compose import compose
from fleet.notices.content import forbidden
from fleet.notices.dispatch import Dispatcher
from fleet.notices.inbound import Inbound, handle_reply, parse_inbound
from fleet.notices.receipts import (
    Receipt,
    apply_receipt,
    parse_callback,
    parse_dsn,
    sweep,
)
from fleet.notices.scams import queue_scam_warning, record_complaint, scam_days
from fleet.notices.verify_log import log_verification
from fleet.swaps.visit import plan
from tests.fleet.notices.test_notices import OPEN, folder, merchants, put, set_merchant

INBOUND = InboundPolicy()


def send_all(engine: Engine, tmp_path: Path) -> None:
    Dispatcher(engine, OPEN, folder(tmp_path)).run(once=True)


def message_of(engine: Engine, merchant_id: str, channel: str | None = None) -> Any:
    with engine.connect() as conn:
        q = select(MESSAGES).where(MESSAGES.c.merchant_id == merchant_id)
        if channel:
            q = q.where(MESSAGES.c.channel == channel)
        return conn.execute(q.order_by(MESSAGES.c.id.desc()).limit(1)).first()


def sms_notice(engine: Engine, tmp_path: Path, n: int = 1, kind: str = "fee_change") -> list[str]:
    """``n`` merchants (SMS first) with a notice sent by SMS (through the folder)."""
    ids = merchants(engine, n)
    at = datetime.now(UTC) - timedelta(minutes=1)
    for m in ids:
        set_merchant(engine, m, channels=["sms"], opt_out=[])
        put(engine, m, kind, f"fee:{m}" if kind == "fee_change" else "swap:1", at)
    send_all(engine, tmp_path)
    return ids


def fallbacks(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            r.payload
            for r in conn.execute(select(EVENTS).where(EVENTS.c.kind == "notice.fallback"))
        ]


# -- parsing ----------------------------------------------------------------------------


def test_callbacks_parse_as_twilio_sends_them_and_as_json() -> None:
    form = b"MessageSid=SM123&MessageStatus=undelivered&ErrorCode=30005&AccountSid=AC1"
    got = parse_callback("application/x-www-form-urlencoded", form)
    assert got == Receipt("SM123", "undelivered", "30005", None)
    doc = {"id": "p-9", "status": "DELIVERED", "reference": "ABCDE-FGHJK"}
    got = parse_callback("application/json", json.dumps(doc).encode())
    assert got == Receipt("p-9", "delivered", None, "ABCDE-FGHJK")
    assert parse_callback("application/json", b'{"id":"x","status":"read"}').status == "delivered"
    for ctype, body, where in [
        ("application/json", b"[1]", "body"),
        ("application/json", b"{nope", "body"),
        ("application/json", b'{"status":"sent"}', "id"),
        ("application/json", b'{"id":"x"}', "status"),
        ("application/json", b'{"id":"x","status":"lost"}', "status"),
        ("application/json", b'{"id":"x y","status":"sent"}', "id"),
        ("application/x-www-form-urlencoded", b"MessageSid=%FF&MessageStatus=sent", "id"),
    ]:
        with pytest.raises(InputError) as caught:
            parse_callback(ctype, body)
        assert caught.value.where == where, body


def test_inbound_parses_and_normalises_the_number() -> None:
    got = parse_inbound(
        "application/x-www-form-urlencoded",
        b"MessageSid=SM1&From=%2B8613851039705&Body=%E9%80%80%E8%AE%A2",
    )
    assert got == Inbound("SM1", "+8613851039705", "退订")
    got = parse_inbound("application/json", b'{"id":"v1","from":"353877612631","text":"STOP"}')
    assert got.from_number == "+353877612631"
    with pytest.raises(InputError) as caught:
        parse_inbound("application/json", b'{"id":"v1","from":"12","text":"STOP"}')
    assert caught.value.where == "from"


# -- receipts ---------------------------------------------------------------------------


def test_receipts_move_forward_only_and_duplicates_change_nothing(
    loaded: Engine, tmp_path: Path
) -> None:
    (m,) = sms_notice(loaded, tmp_path)
    msg = message_of(loaded, m)
    assert msg.status == "sent" and msg.delivery is None
    t0 = datetime.now(UTC)
    first = apply_receipt(loaded, "p", Receipt("SMa", "delivered", None, msg.code), at=t0)
    assert first.applied and first.delivery == "delivered"
    later = t0 + timedelta(minutes=5)
    assert apply_receipt(
        loaded, "p", Receipt("SMa", "delivered", None, msg.code), at=later
    ).duplicate
    late_sent = apply_receipt(loaded, "p", Receipt("SMa", "sent", None, msg.code), at=later)
    assert not late_sent.applied and late_sent.delivery == "delivered"
    bad = apply_receipt(loaded, "p", Receipt("SMa", "undelivered", "30005", msg.code), at=later)
    assert not bad.applied and not bad.fell_back  # the first final state holds
    again = message_of(loaded, m)
    assert again.delivery == "delivered" and again.delivered_at == t0.replace(
        microsecond=t0.microsecond
    )
    with loaded.connect() as conn:
        rows = conn.execute(select(RECEIPTS.c.status, RECEIPTS.c.applied)).all()
    assert sorted(rows) == [("delivered", True), ("sent", False), ("undelivered", False)]
    assert fallbacks(loaded) == []
    unknown = apply_receipt(loaded, "p", Receipt("SMzz", "delivered", None, None))
    assert unknown.message is None and not unknown.applied


def test_undelivered_sms_falls_back_to_email_then_a_bounce_to_a_call(
    loaded: Engine, tmp_path: Path
) -> None:
    (m,) = sms_notice(loaded, tmp_path)
    sms = message_of(loaded, m)
    out = apply_receipt(loaded, "p", Receipt("SMb", "undelivered", "30005", sms.code))
    assert out.applied and out.fell_back
    assert apply_receipt(loaded, "p", Receipt("SMb", "undelivered", "30005", sms.code)).duplicate
    with loaded.connect() as conn:
        notice = conn.execute(select(NOTICES).where(NOTICES.c.merchant_id == m)).one()
    assert notice.status == "queued" and notice.channel == "email"
    assert "sms undelivered" in notice.note
    send_all(loaded, tmp_path)
    mail = message_of(loaded, m, "email")
    assert mail is not None and mail.status == "sent"
    dsn = bounce_for(mail.id, mail.code, mail.address)
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn)
    runner = CliRunner()
    db = str(loaded.url.render_as_string(hide_password=False))
    got = runner.invoke(app, ["--db", db, "notices", "bounce", str(path), "--format", "json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)[0]["fell_back"] is True
    got = runner.invoke(app, ["--db", db, "notices", "bounce", str(path), "--format", "json"])
    assert json.loads(got.stdout)[0]["duplicate"] is True  # fed twice: once
    send_all(loaded, tmp_path)
    call = message_of(loaded, m, "call")
    assert call is not None and call.status == "sent"
    assert [(f["from"], f["to"]) for f in fallbacks(loaded)] == [
        ("sms", "email"),
        ("email", "call"),
    ]
    assert message_of(loaded, m, "email").delivery == "failed"


def bounce_for(message_id: int, code: str, address: str) -> bytes:
    """A DSN as Postfix writes it (RFC 3464: report, status, the returned headers)."""
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n--B1\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system. Your message could not be delivered.\r\n"
        "\r\n--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "\r\n--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <notice-{message_id}.{code}@posfleet>\r\n"
        f"X-Posfleet-Reference: {code}\r\nSubject: x\r\n"
        "\r\n--B1--\r\n"
    ).encode()


def test_a_dsn_that_is_not_one_is_refused_with_its_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        parse_dsn(b"Subject: hello\n\nnot a bounce\n", where="x.eml")
    assert caught.value.where == "x.eml"
    found = parse_dsn(bounce_for(4, "ABCDE-FGHJK", "a@b.example"))
    assert (found.code, found.action, found.status) == ("ABCDE-FGHJK", "failed", "5.1.1")


def test_no_receipt_within_the_window_falls_back_once(loaded: Engine, tmp_path: Path) -> None:
    ids = sms_notice(loaded, tmp_path, 3)
    first = message_of(loaded, ids[0])
    apply_receipt(loaded, "p", Receipt("SMc", "delivered", None, first.code))
    soon = datetime.now(UTC) + timedelta(minutes=10)
    assert sweep(loaded, INBOUND.receipt_window_s, at=soon) == 0  # not yet
    later = datetime.now(UTC) + timedelta(hours=3)
    assert sweep(loaded, INBOUND.receipt_window_s, at=later) == 2
    assert sweep(loaded, INBOUND.receipt_window_s, at=later) == 0
    late = message_of(loaded, ids[1])
    assert late.delivery == "expired"
    out = apply_receipt(loaded, "p", Receipt("SMd", "delivered", None, late.code))
    assert out.applied and not out.fell_back and out.delivery == "delivered"  # evidence, kept
    out = apply_receipt(
        loaded, "p", Receipt("SMe", "undelivered", "1", message_of(loaded, ids[2]).code)
    )
    assert not out.fell_back
    assert sorted(f["merchant_id"] for f in fallbacks(loaded)) == sorted(ids[1:])


# -- replies ----------------------------------------------------------------------------


def reply(engine: Engine, number: str, text: str, pid: str) -> Any:
    return handle_reply(engine, "p", Inbound(pid, number, text), policy=INBOUND, notices=OPEN)


@pytest.mark.parametrize("word", ["STOP", "退订", "td", "T"])
def test_stop_words_opt_out_with_one_confirmation(
    loaded: Engine, tmp_path: Path, word: str
) -> None:
    (m,) = sms_notice(loaded, tmp_path)
    sms = message_of(loaded, m)
    out = reply(loaded, sms.address, f" {word} ", "in-1")
    assert out.action == "opt_out" and out.message == sms.code and out.confirmation
    assert reply(loaded, sms.address, word, "in-1").duplicate  # the provider retried
    assert reply(loaded, sms.address, word, "in-2").confirmation is None  # already out
    with loaded.connect() as conn:
        opt_out = conn.execute(select(MERCHANTS.c.opt_out).where(MERCHANTS.c.id == m)).scalar_one()
        events = conn.execute(
            select(func.count()).where(CONTACT_EVENTS.c.merchant_id == m)
        ).scalar_one()
        confirmations = conn.execute(
            select(MESSAGES).where(MESSAGES.c.merchant_id == m, MESSAGES.c.id != sms.id)
        ).all()
    assert opt_out == ["sms"] and events == 1
    assert len(confirmations) == 1
    c = confirmations[0]
    assert c.channel == "sms" and c.kinds == ["opt_out_confirm"] and forbidden(c.body) is None
    assert c.code in c.body and OPEN.hotline in c.body
    lang_word = "退订" if c.language == "zh-CN" else "no more texts"
    assert lang_word in c.body


def planned_swap(engine: Engine, tmp_path: Path) -> tuple[int, Any]:
    with engine.connect() as conn:
        term = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed")
            .order_by(TERMINALS.c.serial)
            .limit(1)
        ).one()
    set_merchant(engine, term.merchant_id, channels=["sms"], opt_out=[])
    policy = Policy(notices=OPEN)
    result = plan(
        engine, term.serial, date.today() + timedelta(days=30), reason="worn keypad",
        actor="test", policy=policy,
    )  # fmt: skip
    Dispatcher(engine, OPEN, folder(tmp_path)).run(once=True)
    return result.id, message_of(engine, term.merchant_id, "sms")


def test_one_confirms_and_two_reschedules_a_planned_swap(loaded: Engine, tmp_path: Path) -> None:
    swap_id, sms = planned_swap(loaded, tmp_path)
    assert "swap_planned" in sms.kinds
    assert reply(loaded, sms.address, "1", "r1").action == "confirm"
    with loaded.connect() as conn:
        swap = conn.execute(select(SWAPS).where(SWAPS.c.id == swap_id)).one()
    assert swap.merchant_reply == "confirmed"
    out = reply(loaded, sms.address, "2", "r2")
    assert out.action == "reschedule" and out.task is not None
    with loaded.connect() as conn:
        swap = conn.execute(select(SWAPS).where(SWAPS.c.id == swap_id)).one()
        task = conn.execute(select(CALL_TASKS).where(CALL_TASKS.c.id == out.task)).one()
    assert swap.merchant_reply == "reschedule" and task.ref == f"swap:{swap_id}"
    db = str(loaded.url.render_as_string(hide_password=False))
    got = CliRunner().invoke(app, ["--db", db, "swap", "list", "--format", "json"])
    assert json.loads(got.stdout)[0]["merchant_reply"] == "reschedule"


def test_anything_else_is_a_call_task_shown_escaped(loaded: Engine, tmp_path: Path) -> None:
    (m,) = sms_notice(loaded, tmp_path)
    sms = message_of(loaded, m)
    text = '=HYPERLINK("x") who is this?\x1b[31m red <b>'
    out = reply(loaded, sms.address, text, "r9")
    assert out.action == "call_task" and out.merchant_id == m
    assert reply(loaded, "+4915108660000", "hello", "r10").action == "unmatched"
    db = str(loaded.url.render_as_string(hide_password=False))
    got = CliRunner().invoke(app, ["--db", db, "notices", "tasks", "--format", "csv"])
    assert got.exit_code == 0, got.output
    assert "\x1b" not in got.stdout and "'=HYPERLINK" in got.stdout
    got = CliRunner().invoke(app, ["--db", db, "notices", "tasks"])
    assert "\x1b" not in got.stdout
    got = CliRunner().invoke(app, ["--db", db, "notices", "tasks", "--format", "json"])
    assert json.loads(got.stdout)[0]["text"] == text
    with loaded.connect() as conn:
        kept = conn.execute(
            select(CALL_TASKS.c.text).where(CALL_TASKS.c.id == out.task)
        ).scalar_one()
    assert kept == text  # kept as written; escaped where shown


# -- scam radar -------------------------------------------------------------------------


def test_scam_radar_counts_per_region_and_day_with_the_threshold(loaded: Engine) -> None:
    day = datetime(2026, 11, 30, 10, tzinfo=UTC)
    with writer(loaded).begin() as conn:
        for i in range(4):
            log_verification(conn, at=day + timedelta(minutes=i), code=f"FAKE{i}",
                             genuine=False, actor="agent", region="east")  # fmt: skip
        log_verification(conn, at=day, code="REAL", genuine=True, actor="agent", region="east")
        log_verification(conn, at=day, code="FAKEW", genuine=False, actor="agent", region="west")
    (m,) = merchants(loaded, 1)  # region east
    record_complaint(loaded, channel="call", actor="agent", merchant_id=m, note="said PIN", at=day)
    record_complaint(
        loaded, channel="sms", actor="agent", region="west", at=day - timedelta(days=1)
    )
    days = {
        (d.region, d.day.isoformat()): d
        for d in scam_days(loaded, day.date() - timedelta(days=3), day.date(), threshold=5)
    }
    east = days[("east", "2026-11-30")]
    assert (east.not_genuine, east.complaints, east.alert) == (4, 1, True)
    assert not days[("west", "2026-11-30")].alert and days[("west", "2026-11-29")].complaints == 1
    db = str(loaded.url.render_as_string(hide_password=False))
    runner = CliRunner()
    got = runner.invoke(app, ["--db", db, "report", "scams", "--as-of", "2026-11-30",
                              "--format", "json"])  # fmt: skip
    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    assert doc["summary"]["alerts"] == 1 and doc["summary"]["alerting"] == ["east 2026-11-30"]
    assert {(r["region"], r["total"], r["alert"]) for r in doc["scams"]} >= {("east", 5, True)}
    html = runner.invoke(app, ["--db", db, "report", "scams", "--as-of", "2026-11-30",
                               "--format", "html"])  # fmt: skip
    assert html.exit_code == 0 and "east" in html.stdout
    with pytest.raises(InputError):
        record_complaint(loaded, channel="pigeon", actor="a", region="x")


def test_scam_warning_goes_to_the_region_under_the_contact_rules(
    loaded: Engine, tmp_path: Path
) -> None:
    with loaded.connect() as conn:
        region_merchants = list(
            conn.execute(select(MERCHANTS.c.id).where(MERCHANTS.c.region == "east")).scalars()
        )
    queued, already = queue_scam_warning(loaded, "east", actor="ops")
    assert queued == len(region_merchants) > 0 and already == 0
    assert queue_scam_warning(loaded, "east", actor="ops") == (0, queued)  # once a day
    # quiet hours defer them (never dropped)
    quiet = OPEN.__class__(**{**OPEN.__dict__, "quiet": (0, 23 * 60 + 59)})
    result = compose(loaded, quiet)
    assert result.messages == 0 and result.deferred == queued
    with writer(loaded).begin() as conn:
        conn.execute(NOTICES.update().values(not_before=None))
    assert compose(loaded, OPEN).messages == queued
    with loaded.connect() as conn:
        msgs = conn.execute(select(MESSAGES).where(MESSAGES.c.kinds.isnot(None))).all()
    warnings = [m for m in msgs if "scam_warning" in m.kinds]
    assert len(warnings) == queued
    for w in warnings:
        assert forbidden(f"{w.subject}\n{w.body}") is None and w.code in w.body
        assert ("冒充" in w.body) if w.language == "zh-CN" else ("claiming to be us" in w.body)
