"""The notices outbox on SQLite and PostgreSQL: composing under the contact rules, real
SMTP (aiosmtpd) and Apprise (to an HTTP server on loopback) delivery, retries, verify,
opt-outs, and exactly once across a SIGKILLed dispatcher."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.db import writer
from fleet.core.models import AUDIT, CONTACT_EVENTS, MERCHANTS, MESSAGES, NOTICES
from fleet.core.policy import NoticePolicy
from fleet.notices import payload_of, queue
from fleet.notices.channels import (
    AppriseTransport,
    CallListTransport,
    FolderTransport,
    Outgoing,
    SmtpTransport,
    Transport,
)
from fleet.notices.compose import compose
from fleet.notices.dispatch import Dispatcher
from fleet.notices.preferences import record_contact
from fleet.notices.verify import verify
from tests.fleet.smtp_sink import Sink, smtp_server

POSFLEET = str(Path(sys.executable).with_name("posfleet"))
# Open all day, no digest wait, generous limits: each test turns on the rule it checks.
OPEN = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0)
FEE = {
    "version": 7, "old_version": 6, "effective": "2027-01-01T00:00:00+08:00",
    "currency": "CNY", "basket_old": 312, "basket_new": 348, "direction": "up",
    "reason_code": "scheme_fees", "sales": 4, "basket_total": 46_500,
}  # fmt: skip
SWAP = {
    "swap": 1, "old": "PS00000001", "new": "PS00000002", "model": "PF-300",
    "tid": "T0000001", "date": "2026-12-01", "reason_code": "pci_expiry",
    "engineer": "Li Wei", "version": 7,
}  # fmt: skip


def set_merchant(engine: Engine, merchant_id: str, **values: Any) -> None:
    with writer(engine).begin() as conn:
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant_id).values(**values))


def merchants(engine: Engine, n: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(MERCHANTS.c.id).order_by(MERCHANTS.c.id).limit(n)).scalars()
        )


def put(engine: Engine, merchant_id: str, kind: str, ref: str, at: datetime, **kw: Any) -> None:
    with writer(engine).begin() as conn:
        payload = FEE if kind == "fee_change" else SWAP
        queue(conn, payload_of(kind, payload), merchant_id=merchant_id, ref=ref, at=at, **kw)


def folder(tmp_path: Path) -> dict[str, Transport]:
    return {
        "sms": FolderTransport(tmp_path / "outbox"),
        "email": FolderTransport(tmp_path / "outbox"),
        "call": CallListTransport(tmp_path / "outbox"),
    }


def messages(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(MESSAGES).order_by(MESSAGES.c.id)))


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(NOTICES.c.status, func.count()).group_by(NOTICES.c.status))
        return {status: n for status, n in rows}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- compose --------------------------------------------------------------------------------


def test_notices_to_one_merchant_become_one_digest(loaded: Engine, tmp_path: Path) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, channels=["email"], language="en", timezone="Europe/Dublin")
    at = utc(2026, 12, 1, 12)
    put(loaded, m, "fee_change", "fee:7", at)
    put(loaded, m, "swap_planned", "swap:1", at + timedelta(minutes=5))
    policy = NoticePolicy(quiet=(0, 0), digest_s=15 * 60)
    early = compose(loaded, policy, at=at + timedelta(minutes=10))
    assert early.messages == 0  # the first notice waits for others to join it
    result = compose(loaded, policy, at=at + timedelta(minutes=16))
    assert (result.messages, result.notices) == (1, 2)
    [message] = messages(loaded)
    assert message.kinds == ["fee_change", "swap_planned"] and message.channel == "email"
    assert message.subject.startswith("2 notices about your card terminals")
    assert "1. Your card fees change on 31 Dec 2026 16:00" in message.body  # Dublin time
    assert "2. Your card terminal PS00000001 will be replaced on 1 Dec 2026" in message.body
    assert statuses(loaded) == {"composed": 2}


def test_an_sms_digest_takes_what_fits_and_the_rest_waits(loaded: Engine) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, channels=["sms"], opt_out=[], language="zh-CN")
    at = utc(2026, 12, 1, 4)
    for i in range(3):
        put(loaded, m, "swap_done", f"swap:{i}", at)
    first = compose(loaded, OPEN, at=at)
    assert (first.messages, first.notices) == (1, 1)  # two zh-CN swaps don't fit 3 segments
    [message] = messages(loaded)
    assert message.sms_encoding == "UCS-2" and message.segments <= 3
    assert message.cost == message.segments * 5 and message.cost_currency == "EUR"
    assert statuses(loaded) == {"composed": 1, "queued": 2}
    later = compose(loaded, OPEN, at=at + timedelta(minutes=1))
    assert later.messages == 1  # the next message, within the rate limit


@pytest.mark.parametrize(
    ("zone", "at", "until"),
    [
        ("Asia/Shanghai", utc(2026, 12, 1, 14), utc(2026, 12, 2, 0)),  # 22:00 → 08:00 CST
        ("Europe/Dublin", utc(2026, 3, 28, 22), utc(2026, 3, 29, 7)),  # DST starts overnight
        ("America/New_York", utc(2026, 11, 1, 3), utc(2026, 11, 1, 13)),  # DST ends overnight
    ],
)
def test_quiet_hours_defer_and_never_drop(
    loaded: Engine, tmp_path: Path, zone: str, at: datetime, until: datetime
) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, timezone=zone, channels=["sms"])
    put(loaded, m, "swap_done", "swap:1", at)
    policy = NoticePolicy(digest_s=0)
    result = compose(loaded, policy, at=at)
    assert (result.messages, result.deferred) == (0, 1)
    with loaded.connect() as conn:
        notice = conn.execute(select(NOTICES)).one()
    assert notice.status == "queued" and notice.not_before == until
    assert "quiet hours" in notice.note
    assert compose(loaded, policy, at=until - timedelta(minutes=1)).messages == 0
    assert compose(loaded, policy, at=until).messages == 1


def test_the_rate_limit_defers_then_merges(loaded: Engine) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, channels=["email"], timezone="UTC")
    policy = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=2, window_s=86_400)
    t = utc(2026, 12, 1, 9)
    for i in range(2):
        put(loaded, m, "swap_done", f"swap:{i}", t + timedelta(hours=i))
        assert compose(loaded, policy, at=t + timedelta(hours=i)).messages == 1
    for i in range(2, 5):
        put(loaded, m, "swap_done", f"swap:{i}", t + timedelta(hours=3))
    blocked = compose(loaded, policy, at=t + timedelta(hours=3))
    assert (blocked.messages, blocked.deferred) == (0, 3)
    with loaded.connect() as conn:
        waits = set(
            conn.execute(select(NOTICES.c.not_before).where(NOTICES.c.status == "queued")).scalars()
        )
    assert waits == {t + timedelta(days=1)}  # when the first message leaves the window
    with loaded.connect() as conn:
        notes = set(
            conn.execute(select(NOTICES.c.note).where(NOTICES.c.status == "queued")).scalars()
        )
    assert notes == {
        f"deferred to {(t + timedelta(days=1)).isoformat()}: at most 2 email messages per window"
    }
    freed = compose(loaded, policy, at=t + timedelta(days=1))
    assert (freed.messages, freed.notices) == (1, 3)  # one digest, not three messages


def test_opt_outs_and_complaints_change_the_channel(loaded: Engine) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, channels=["sms", "email"], opt_out=[])
    assert record_contact(loaded, m, "complaint", ["sms"], actor="cc", note="too many texts") == [
        "sms"
    ]
    at = utc(2026, 12, 1, 10)
    put(loaded, m, "swap_done", "swap:1", at)
    compose(loaded, OPEN, at=at)
    assert messages(loaded)[-1].channel == "email"
    record_contact(loaded, m, "opt_out", ["email", "call"], actor="cc")
    put(loaded, m, "swap_done", "swap:2", at)
    put(loaded, m, "follow_up", "swap:2", at, channel="call")  # a call task, but no calls
    result = compose(loaded, OPEN, at=at + timedelta(minutes=1))
    assert result.cancelled == 1  # an optional follow-up to a merchant who opted out of all
    assert messages(loaded)[-1].channel == "call"  # a swap notice still reaches them
    assert record_contact(loaded, m, "opt_in", ["sms"], actor="cc") == ["email", "call"]
    with loaded.connect() as conn:
        kinds = list(conn.execute(select(CONTACT_EVENTS.c.kind).order_by("id")).scalars())
        audited = conn.execute(
            select(func.count()).where(AUDIT.c.target == f"merchant:{m}")
        ).scalar_one()
    assert kinds == ["complaint", "opt_out", "opt_out", "opt_in"] and audited == 3


def test_a_merchant_without_contact_data_fails_the_notice_visibly(loaded: Engine) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, phone=None, email=None)
    put(loaded, m, "fee_change", "fee:7", utc(2026, 12, 1, 10))
    assert compose(loaded, OPEN, at=utc(2026, 12, 1, 10)).failed == 1
    with loaded.connect() as conn:
        notice = conn.execute(select(NOTICES)).one()
    assert (notice.status, notice.note) == ("failed", "no contact data")


# -- dispatch -------------------------------------------------------------------------------


def test_smtp_delivery_in_both_languages(loaded: Engine) -> None:
    zh, en = merchants(loaded, 2)
    set_merchant(loaded, zh, channels=["email"], language="zh-CN", email="li@example.cn")
    set_merchant(loaded, en, channels=["email"], language="en", email="ana@example.ie")
    at = datetime.now(UTC) - timedelta(minutes=1)
    put(loaded, zh, "fee_change", "fee:7", at)
    put(loaded, en, "fee_change", "fee:7", at)
    with smtp_server() as (url, sink):
        transports: dict[str, Transport] = {"email": SmtpTransport(url)}
        result = Dispatcher(loaded, OPEN, transports).run()
    assert result.sent == 2 and result.failed == 0
    by_to = {r.envelope_to[0]: r.message for r in sink.received}
    zh_mail, en_mail = by_to["li@example.cn"], by_to["ana@example.ie"]
    sent = {m.address: m for m in messages(loaded)}
    assert zh_mail["Message-ID"] == sent["li@example.cn"].provider_ref
    zh_body = zh_mail.get_payload(decode=True).decode()
    assert "您的刷卡手续费将于2027年1月1日 00:00调整" in zh_body
    assert "3.12 CNY" in zh_body and "3.48 CNY" in zh_body
    assert (
        sent["li@example.cn"].code in zh_body and sent["li@example.cn"].code in zh_mail["Subject"]
    )
    en_body = en_mail.get_payload(decode=True).decode()
    assert "your fees go from 3.12 CNY to 3.48 CNY (+0.36 CNY)" in en_body
    assert "http" not in en_body and "http" not in zh_body
    assert statuses(loaded) == {"sent": 2}


def test_smtp_temporary_errors_retry_and_permanent_ones_fail(loaded: Engine) -> None:
    m1, m2 = merchants(loaded, 2)
    for m in (m1, m2):
        set_merchant(loaded, m, channels=["email"])
    put(loaded, m1, "swap_done", "swap:1", datetime.now(UTC) - timedelta(minutes=1))
    policy = NoticePolicy(quiet=(0, 0), digest_s=0, backoff_s=0.0, max_attempts=3)
    with smtp_server(Sink(reply="451 4.3.0 try later")) as (url, sink):
        first = Dispatcher(loaded, policy, {"email": SmtpTransport(url)}).run()
        assert first.failed == 1 and first.retried == 2  # three attempts, then failed
        [failed] = messages(loaded)
        assert failed.status == "failed" and "451" in failed.error and failed.attempts == 3
        sink.reply = "550 5.1.1 no such mailbox"
        put(loaded, m2, "swap_done", "swap:2", datetime.now(UTC) - timedelta(minutes=1))
        second = Dispatcher(loaded, policy, {"email": SmtpTransport(url)}).run()
        assert second.failed == 1 and second.retried == 0  # permanent: no retry
    assert statuses(loaded) == {"failed": 2}


class _Gateway(BaseHTTPRequestHandler):
    """An SMS provider's HTTP API on loopback, as Apprise's json:// posts to it."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Gateway.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_sms_through_apprise(loaded: Engine) -> None:
    m = merchants(loaded, 1)[0]
    set_merchant(loaded, m, channels=["sms"], language="en", phone="+353861234567")
    put(loaded, m, "swap_done", "swap:1", datetime.now(UTC) - timedelta(minutes=1))
    _Gateway.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"json://127.0.0.1:{server.server_address[1]}/sms/{{phone}}"
        result = Dispatcher(loaded, OPEN, {"sms": AppriseTransport(url)}).run()
    finally:
        server.shutdown()
    assert result.sent == 1
    [(path, doc)] = _Gateway.received
    assert path in ("/sms/%2B353861234567", "/sms/+353861234567")
    [message] = messages(loaded)
    assert doc["message"] == message.body and message.code in doc["message"]
    assert message.body.startswith("[posfleet] Terminal PS00000001 was replaced by PS00000002")
    with pytest.raises(ValueError, match=r"\{phone\}"):
        AppriseTransport("json://127.0.0.1:1/")


def test_verify_tells_genuine_from_fake(loaded: Engine, tmp_path: Path, db_url: str) -> None:
    m = merchants(loaded, 1)[0]
    put(loaded, m, "swap_done", "swap:1", datetime.now(UTC) - timedelta(minutes=1))
    Dispatcher(loaded, OPEN, folder(tmp_path)).run()
    [message] = messages(loaded)
    found = verify(loaded, message.code.lower().replace("-", " "), actor="cc")
    assert found.genuine and found.as_dict()["merchant_id"] == m
    assert found.as_dict()["notices"][0]["kind"] == "swap_done"
    assert "****" in found.as_dict()["to"] or "***@" in found.as_dict()["to"]
    assert not verify(loaded, "AAAAA-BBBBB", actor="cc").genuine
    runner = CliRunner()
    ok = runner.invoke(app, ["--db", db_url, "notices", "verify", message.code])
    assert ok.exit_code == 0 and "GENUINE" in ok.output and message.body[:40] in ok.output
    fake = runner.invoke(app, ["--db", db_url, "notices", "verify", "AAAAA", "BBBBB"])
    assert fake.exit_code == 1 and "NOT GENUINE" in fake.output
    with loaded.connect() as conn:
        checks = conn.execute(select(func.count()).where(AUDIT.c.action == "verify")).scalar_one()
    assert checks == 4


def test_files_and_call_lists_are_written_once(loaded: Engine, tmp_path: Path) -> None:
    ms = merchants(loaded, 3)
    set_merchant(loaded, ms[0], channels=["email"])
    set_merchant(loaded, ms[1], channels=["sms"])
    set_merchant(loaded, ms[2], channels=["call"])
    at = datetime.now(UTC) - timedelta(minutes=1)
    for m in ms:
        put(loaded, m, "swap_done", "swap:1", at)
    transports = folder(tmp_path)
    result = Dispatcher(loaded, OPEN, transports).run()
    assert dict(result.by_channel) == {"email": 1, "sms": 1, "call": 1}
    outbox = tmp_path / "outbox"
    assert len(list(outbox.glob("email/*/*.eml"))) == 1
    assert len(list(outbox.glob("sms/*/*.txt"))) == 1
    [calls] = list(outbox.glob("calls/*.csv"))
    rows = list(csv.reader(calls.open(encoding="utf-8", newline="")))
    assert rows[0][:2] == ["reference", "merchant_id"] and len(rows) == 2
    assert "Say:" in rows[1][5] or "开场" in rows[1][5]  # the script, in one cell
    # a message re-sent after a lost lease is recognised, not written again
    m = messages(loaded)
    for msg in m:
        out = Outgoing(msg.id, msg.code, msg.merchant_id, "x", msg.channel, msg.address,
                       msg.subject, msg.body, msg.created_at, "a@b.c")  # fmt: skip
        transports[msg.channel].send(out)
    assert len(list(csv.reader(calls.open(encoding="utf-8", newline="")))) == 2
    assert len(list(outbox.rglob("*.*"))) == 3


# -- exactly once, across a SIGKILL ------------------------------------------------------------


def _dispatch(
    db_url: str, outbox: Path, smtp: str, env: dict[str, str], connections: int = 1
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [POSFLEET, "--db", db_url, "notices", "dispatch", "--outbox", str(outbox),
         "--smtp", smtp, "--lease", "2", "--batch", "25", "--format", "json",
         "--connections", str(connections)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize("connections", [1, 4])
def test_exactly_once_when_a_dispatcher_is_killed_mid_batch(
    loaded: Engine, db_url: str, tmp_path: Path, connections: int
) -> None:
    """Killed mid-batch, then another dispatcher finishes: every message sent, repeats only
    within the documented window (one message per SMTP connection, with its Message-ID)."""
    ids = merchants(loaded, 400)
    with writer(loaded).begin() as conn:
        conn.execute(
            update(MERCHANTS)
            .where(MERCHANTS.c.id.in_(ids))
            .values(channels=["email", "sms"], opt_out=[], email="m@example.com")
        )
    at = datetime.now(UTC) - timedelta(hours=1)
    for i, m in enumerate(ids):  # half email (SMTP), half SMS (outbox files)
        put(loaded, m, "swap_done", "swap:1", at)
        if i % 2:
            set_merchant(loaded, m, channels=["sms"])
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        '[notices]\nquiet_hours = "00:00-00:00"\ndigest_window = "0m"\nmax_per_window = 100\n'
    )
    env = dict(os.environ, POSFLEET_POLICY=str(policy_file))
    outbox = tmp_path / "outbox"
    with smtp_server(Sink(delay_s=0.004)) as (url, sink):
        first = _dispatch(db_url, outbox, url, env, connections)
        deadline = time.monotonic() + 60
        while len(sink.received) < len(ids) // 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)  # mid-batch: some messages claimed, unsent
        first.wait(10)
        with loaded.connect() as conn:
            left = conn.execute(
                select(func.count()).where(MESSAGES.c.status.in_(("sending", "ready")))
            ).scalar_one()
        assert left > 0, "the kill must land before the end"
        second = _dispatch(db_url, outbox, url, env, connections)
        _out, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
        all_messages = messages(loaded)
        assert len(all_messages) == len(ids) and {m.status for m in all_messages} == {"sent"}
        assert statuses(loaded) == {"sent": len(ids)}
        emails = {m.provider_ref: m for m in all_messages if m.channel == "email"}
        received = sink.message_ids()
        peers = {r.peer for r in sink.received}
    # the first dispatcher's connections and the second's (an SMS sender opens none)
    assert connections < len(peers) <= 2 * connections
    # every email arrived; an email is re-sent only if the kill fell between the server's
    # 250 and the database commit, and then with the same Message-ID (receivers dedupe)
    assert set(received) == set(emails)
    repeats = {mid for mid in received if received.count(mid) > 1}
    assert all(emails[mid].attempts > 1 for mid in repeats)
    assert len(received) - len(set(received)) <= connections
    sms_files = list(outbox.glob("sms/*/*.txt"))
    assert len(sms_files) == len(ids) // 2  # files: exactly once, always
    assert {f.stem for f in sms_files} == {m.code for m in all_messages if m.channel == "sms"}
    taken_over = [m for m in all_messages if m.attempts > 1]
    print(f"received {len(received)}, taken over {len(taken_over)}, repeats {len(repeats)}")
    assert taken_over, "the restarted dispatcher must take over the killed one's messages"
