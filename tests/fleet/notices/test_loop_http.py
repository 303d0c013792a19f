"""The loop over real HTTP, on SQLite and PostgreSQL: a real ``posfleet serve`` (uvicorn on
loopback), SMS sent through Apprise (``json://``) to the provider double, which calls the
status endpoint back with delays, duplicates, losses and reordering; a reply; the
provider's secret; and a server SIGKILLed mid-stream of callbacks, restarted and
replayed: nothing changed twice."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from fleet.core.models import EVENTS, MERCHANTS, MESSAGES, NOTICES, RECEIPTS
from fleet.core.policy import InboundPolicy
from fleet.notices.channels import AppriseTransport, CallListTransport, FolderTransport
from fleet.notices.dispatch import Dispatcher
from fleet.notices.providers import add_provider
from fleet.notices.receipts import sweep
from tests.fleet.notices.provider_double import Plan, provider_double
from tests.fleet.notices.test_loop import bounce_for
from tests.fleet.notices.test_notices import OPEN, put, set_merchant
from tests.fleet.web.server import serve

pytestmark = pytest.mark.slow  # handed out first under xdist (tests/conftest.py)


def sms_merchants(engine: Engine, n: int) -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(MERCHANTS.c.id, MERCHANTS.c.phone)
            .where(MERCHANTS.c.phone.isnot(None), MERCHANTS.c.email.isnot(None))
            .order_by(MERCHANTS.c.id)
            .limit(n)
        ).all()
    at = datetime.now(UTC) - timedelta(minutes=1)
    for r in rows:
        set_merchant(engine, r.id, channels=["sms"], opt_out=[])
        put(engine, r.id, "fee_change", f"fee:{r.id}", at)
    return list(rows)


def dispatch(engine: Engine, tmp_path: Path, sms_url: str | None = None) -> None:
    box = tmp_path / "outbox"
    sends = {
        "sms": AppriseTransport(sms_url) if sms_url else FolderTransport(box),
        "email": FolderTransport(box),
        "call": CallListTransport(box),
    }
    result = Dispatcher(engine, OPEN, sends).run(once=True)
    assert result.failed == 0, result.errors


def deliveries(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(MESSAGES.c.address, MESSAGES.c.delivery).where(MESSAGES.c.channel == "sms")
        )
        return {r.address: r.delivery for r in rows}


def fallback_count(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS.c.payload).where(EVENTS.c.kind == "notice.fallback"))
        return Counter(p["merchant_id"] for (p,) in rows)


def test_the_loop_over_real_http(loaded: Engine, db_url: str, tmp_path: Path) -> None:
    rows = sms_merchants(loaded, 12)
    bad_phone, silent_phone = rows[0].phone, rows[3].phone
    secret = add_provider(loaded, "twilio", actor="test")
    finals = {bad_phone: "undelivered", silent_phone: ""}  # "": its receipt never comes
    plan = Plan(
        delay=(0.0, 0.4), duplicates=0.5, final=lambda p: finals.get(p, "delivered")
    )  # fmt: skip
    with (
        serve(db_url, tmp_path) as served,
        provider_double(served.url, "twilio", secret, plan) as double,
    ):
        dispatch(loaded, tmp_path, double.apprise_url)
        assert len(double.taken) == 12
        assert all(t.reference and t.reference in t.body for t in double.taken)
        assert double.idle()
        assert all(code == 200 for code in double.answers), (
            double.refused,
            served.log.read_text(errors="replace")[-2000:],
        )
        got = deliveries(loaded)
        assert got[bad_phone] == "undelivered" and got[silent_phone] == "sent"
        assert all(v == "delivered" for k, v in got.items() if k not in finals)
        assert double.replay() == [200] * len(double.sent)  # all again: nothing changes
        assert deliveries(loaded) == got
        assert fallback_count(loaded) == Counter({rows[0].id: 1})  # only the undelivered
        # the provider's secret: wrong or missing is 401, for a known or unknown provider
        doc = {"MessageSid": "SMx", "MessageStatus": "failed"}
        url = f"{served.url}/api/v1/hooks/sms/twilio/status"
        assert httpx.post(url, data=doc, auth=("twilio", "wrong")).status_code == 401
        assert httpx.post(url, data=doc).status_code == 401
        assert (
            httpx.post(url.replace("twilio", "other"), data=doc, auth=("x", secret)).status_code
            == 401
        )
        assert httpx.post(url, data=doc, headers={"X-Posfleet-Secret": secret}).status_code == 200
        bad = httpx.post(url, data={"MessageSid": "SMx"}, auth=("twilio", secret))
        assert bad.status_code == 422 and "status" in bad.json()["detail"]
        # a reply over HTTP: STOP from the second merchant
        answer = double.reply(rows[1].phone, "STOP")
        assert answer.status_code == 200 and answer.json()["action"] == "opt_out"
        assert double.reply(rows[2].phone, "<script>x</script>").json()["action"] == "call_task"
        tasks = httpx.get(f"{served.url}/api/v1/call-tasks").status_code
        assert tasks == 401  # not for the anonymous
        # the undelivered SMS's notice goes by email now; its bounce, posted, to a call
        dispatch(loaded, tmp_path)
        with loaded.connect() as conn:
            notice = conn.execute(select(NOTICES).where(NOTICES.c.merchant_id == rows[0].id)).one()
            mail = conn.execute(select(MESSAGES).where(MESSAGES.c.id == notice.message_id)).one()
            opted = conn.execute(
                select(MERCHANTS.c.opt_out).where(MERCHANTS.c.id == rows[1].id)
            ).scalar_one()
        assert mail.channel == "email" and mail.status == "sent"
        assert opted == ["sms"]
        bounce_url = f"{served.url}/api/v1/hooks/mail/twilio/bounce"
        dsn = bounce_for(mail.id, mail.code, mail.address)
        headers = {"Content-Type": "message/rfc822"}
        assert httpx.post(bounce_url, content=dsn, headers=headers).status_code == 401
        posted = httpx.post(bounce_url, content=dsn, headers=headers, auth=("twilio", secret))
        assert posted.status_code == 200 and posted.json()["fell_back"] is True
        junk = httpx.post(bounce_url, content=b"hello", headers=headers, auth=("twilio", secret))
        assert junk.status_code == 422
        log = served.log.read_text(encoding="utf-8", errors="replace")
    assert secret not in log
    with loaded.connect() as conn:
        notice = conn.execute(select(NOTICES).where(NOTICES.c.merchant_id == rows[0].id)).one()
    assert (notice.status, notice.channel) == ("queued", "call")
    # the SMS whose receipt never came: expired after the window, by email too (once)
    later = datetime.now(UTC) + timedelta(hours=3)
    # (and the opt-out's confirmation, sent through the folder: expired, nothing to carry)
    assert sweep(loaded, InboundPolicy().receipt_window_s, at=later) == 2
    assert sweep(loaded, InboundPolicy().receipt_window_s, at=later) == 0
    assert deliveries(loaded)[silent_phone] == "expired"
    assert fallback_count(loaded) == Counter({rows[0].id: 2, rows[3].id: 1})
    with loaded.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(RECEIPTS)).scalar_one()
    callbacks = {(d["MessageSid"], d["MessageStatus"]) for d in double.sent}
    assert stored == len(callbacks) + 2  # and the unmatched SMx, and the bounce


def _post_all(
    url: str, auth: tuple[str, str], docs: list[dict[str, str]], codes: list[int]
) -> list[int]:
    """Post ``docs`` in order, each answer's status into ``codes`` as it comes; stop at
    the first connection error (the server died under us)."""
    with httpx.Client(timeout=5) as client:
        for doc in docs:
            try:
                codes.append(client.post(url, data=doc, auth=auth).status_code)
            except httpx.HTTPError:
                break
    return codes


def test_sigkill_while_processing_callbacks_changes_nothing_twice(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    rows = sms_merchants(loaded, 40)
    dispatch(loaded, tmp_path)  # SMS through the folder; the callbacks come from here
    with loaded.connect() as conn:
        msgs = conn.execute(select(MESSAGES.c.code, MESSAGES.c.merchant_id)).all()
    rnd = random.Random(3)
    bad = {m.merchant_id for m in msgs[::4]}
    docs = []
    for m in msgs:
        final = "undelivered" if m.merchant_id in bad else "delivered"
        for status in ("queued", "sent", final):
            doc = {"MessageSid": f"SM{m.code}", "MessageStatus": status, "reference": m.code}
            if final == "undelivered":
                doc["ErrorCode"] = "30005"
            docs += [doc] * (2 if rnd.random() < 0.3 else 1)
    rnd.shuffle(docs)
    secret = add_provider(loaded, "twilio", actor="test")
    auth = ("twilio", secret)
    with serve(db_url, tmp_path) as served:
        url = f"{served.url}/api/v1/hooks/sms/twilio/status"
        out: list[list[int]] = [[], []]
        halves = [docs[0::2], docs[1::2]]
        threads = [
            threading.Thread(target=_post_all, args=(url, auth, halves[i], out[i]))
            for i in range(2)
        ]
        for t in threads:
            t.start()
        while sum(len(o) for o in out) < len(docs) // 3:
            time.sleep(0.002)
        served.proc.kill()  # SIGKILL mid-stream
        first_log = served.log.read_text(errors="replace")[-1500:]
        served.proc.wait(timeout=10)
        for t in threads:
            t.join(timeout=30)
    answered = sum(code == 200 for o in out for code in o)
    assert 0 < answered < len(docs), (Counter(c for o in out for c in o), first_log)
    with serve(db_url, tmp_path) as served:  # restarted: the provider retries everything
        url = f"{served.url}/api/v1/hooks/sms/twilio/status"
        codes = _post_all(url, auth, docs, [])
    assert codes == [200] * len(docs)
    with loaded.connect() as conn:
        states = dict(conn.execute(select(MESSAGES.c.merchant_id, MESSAGES.c.delivery)).all())
        applied = conn.execute(
            select(RECEIPTS.c.message_id, RECEIPTS.c.status, func.count())
            .where(RECEIPTS.c.applied.is_(True))
            .group_by(RECEIPTS.c.message_id, RECEIPTS.c.status)
        ).all()
        queued_again = conn.execute(
            select(func.count()).where(NOTICES.c.status == "queued", NOTICES.c.channel == "email")
        ).scalar_one()
    for r in rows:
        assert states[r.id] == ("undelivered" if r.id in bad else "delivered"), r.id
    assert all(n == 1 for _, _, n in applied)
    assert {status for _, status, _ in applied} >= {"delivered", "undelivered"}
    assert fallback_count(loaded) == Counter(dict.fromkeys(bad, 1))
    assert queued_again == len(bad)
