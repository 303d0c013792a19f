"""The loop after sending: 10,000 SMS status callbacks and 1,000 inbound replies through
the endpoints of a real ``posfleet serve`` (uvicorn on loopback, SQLite), zero lost or
doubled state changes.

3,000 SMS are seeded as sent (each carrying a fee-change notice); every fifth ends
``undelivered`` (its notice falls back to email), the rest ``delivered``. Their
callbacks — ``queued``, ``sent`` and the final status, 1,000 of them sent twice — are
shuffled (so a final status often comes before ``sent``) and posted form-encoded, as
Twilio posts them, with the provider's secret, by 16 concurrent clients. Then 1,000
replies: 400 stop words (``STOP``, ``退订``), 600 free texts (call tasks).

Checked afterwards, in the database: every message in its expected final state (a
*lost* change otherwise), at most one applied receipt per message and status, exactly
one fallback per undelivered message and none for the others, one opt-out and one
confirmation per stopping merchant, one call task per free text (a *doubled* change
otherwise). Printed: callbacks/s, p50/p95/p99, replies/s and p95, lost and doubled.

Reference, side by side in the same run: the same server's ``/health`` (no database)
under the same clients — the HTTP stack's own floor.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

from fleet.core import db
from fleet.core.models import (
    CALL_TASKS,
    CONTACT_EVENTS,
    EVENTS,
    MERCHANTS,
    MESSAGES,
    NOTICES,
    RECEIPTS,
)
from fleet.notices.providers import add_provider

MESSAGES_N = 3_000
DUPLICATES = 1_000
REPLIES = 1_000
STOPS = 400
CLIENTS = 16
REFERENCE = 2_000
PAYLOAD = {
    "version": 2, "old_version": 1, "effective": "2027-03-01T00:00:00+08:00",
    "currency": "EUR", "basket_old": 312, "basket_new": 348, "direction": "up",
    "reason": "", "sales": 4, "basket_total": 46_500,
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _phone(i: int) -> str:
    return f"+35387{i:07d}"


def _seed(url: str) -> None:
    engine = db.connect(url)
    db.upgrade(engine)
    at = datetime.now(UTC) - timedelta(minutes=10)
    merchants = [
        {"id": f"L{i:014d}", "name": f"Loop Merchant {i}", "mcc": 5411, "phone": _phone(i),
         "email": f"m{i}@loop.example", "language": "zh-CN" if i % 2 else "en",
         "timezone": "Europe/Dublin", "region": f"r{i % 7}", "tags": [], "channels": ["sms"],
         "opt_out": []}
        for i in range(MESSAGES_N)
    ]  # fmt: skip
    with db.writer(engine).begin() as conn:
        conn.execute(insert(MERCHANTS), merchants)
        conn.execute(
            insert(MESSAGES),
            [
                {"code": f"LP{i:08d}", "merchant_id": m["id"], "channel": "sms",
                 "address": m["phone"], "language": m["language"], "kinds": ["fee_change"],
                 "subject": "", "body": f"[posfleet] fee change. Ref LP{i:08d}.",
                 "status": "sent", "attempts": 1, "not_before": at, "created_at": at,
                 "sent_at": at, "transport": "apprise:json://127.0.0.1"}
                for i, m in enumerate(merchants)
            ],
        )  # fmt: skip
        ids = dict(conn.execute(select(MESSAGES.c.merchant_id, MESSAGES.c.id)).all())
        conn.execute(
            insert(NOTICES),
            [
                {"kind": "fee_change", "merchant_id": m["id"], "ref": "fee:2", "payload": PAYLOAD,
                 "created_at": at, "status": "sent", "message_id": ids[m["id"]]}
                for m in merchants
            ],
        )  # fmt: skip
    engine.dispose()


def _final(i: int) -> str:
    return "undelivered" if i % 5 == 0 else "delivered"


def _callbacks(rnd: random.Random) -> list[dict[str, str]]:
    docs = []
    for i in range(MESSAGES_N):
        for status in ("queued", "sent", _final(i)):
            doc = {"MessageSid": f"SM{i:030d}", "MessageStatus": status,
                   "reference": f"LP{i:08d}", "AccountSid": "ACbench"}  # fmt: skip
            if status == "undelivered":
                doc["ErrorCode"] = "30005"
            docs.append(doc)
    docs += rnd.sample(docs, DUPLICATES)
    rnd.shuffle(docs)
    return docs


def _replies() -> list[dict[str, str]]:
    out = []
    for k in range(REPLIES):
        i = 1 + k * 2  # merchants 1, 3, 5, …: none of them undelivered twice over
        text = ("STOP" if k % 2 else "退订") if k < STOPS else f"call me about <b>{k}</b>"
        out.append({"MessageSid": f"SMin{k:028d}", "From": _phone(i), "Body": text})
    return out


async def _load(
    url: str, docs: list[dict[str, str]], auth: tuple[str, str] | None, get: bool = False
) -> tuple[float, list[float], Counter[int]]:
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for doc in docs:
        queue.put_nowait(doc)
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    doc = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                if get:
                    answer = await client.get(url)
                else:
                    answer = await client.post(url, data=doc, auth=auth)
                latencies.append(time.perf_counter() - start)
                codes[answer.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, codes


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def _check(url: str) -> tuple[int, int, list[str]]:
    """(lost, doubled, notes) from the database."""
    engine = db.connect(url)
    notes = []
    with engine.connect() as conn:
        states = dict(conn.execute(select(MESSAGES.c.code, MESSAGES.c.delivery)).all())
        applied = conn.execute(
            select(RECEIPTS.c.message_id, RECEIPTS.c.status, func.count())
            .where(RECEIPTS.c.applied.is_(True))
            .group_by(RECEIPTS.c.message_id, RECEIPTS.c.status)
        ).all()
        fallbacks = Counter(
            p["message"]
            for (p,) in conn.execute(
                select(EVENTS.c.payload).where(EVENTS.c.kind == "notice.fallback")
            )
        )
        requeued = conn.execute(
            select(func.count()).where(NOTICES.c.status == "queued", NOTICES.c.channel == "email")
        ).scalar_one()
        opt_outs = conn.execute(
            select(func.count()).where(CONTACT_EVENTS.c.kind == "opt_out")
        ).scalar_one()
        confirmations = conn.execute(
            select(func.count()).where(MESSAGES.c.status == "ready", MESSAGES.c.channel == "sms")
        ).scalar_one()
        tasks = conn.execute(select(func.count()).select_from(CALL_TASKS)).scalar_one()
    engine.dispose()
    lost = sum(states.get(f"LP{i:08d}") != _final(i) for i in range(MESSAGES_N))
    doubled = sum(n - 1 for _, _, n in applied if n > 1)
    undelivered = {f"LP{i:08d}" for i in range(MESSAGES_N) if _final(i) == "undelivered"}
    lost += len(undelivered - set(fallbacks))
    doubled += sum(n - 1 for n in fallbacks.values()) + len(set(fallbacks) - undelivered)
    doubled += max(0, requeued - len(undelivered))
    lost += max(0, len(undelivered) - requeued)
    for what, got, want in (("opt-outs", opt_outs, STOPS), ("confirmations", confirmations, STOPS),
                            ("call tasks", tasks, REPLIES - STOPS)):  # fmt: skip
        if got > want:
            doubled += got - want
        elif got < want:
            lost += want - got
        notes.append(f"{what} {got:,}/{want:,}")
    return lost, doubled, notes


def _serve(url: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, POSFLEET_DB=url, POSFLEET_ACTOR="bench")
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("posfleet")), "serve", "--port", str(port),
         "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("posfleet serve did not start")


def run() -> list[str]:
    lines = [
        f"## {MESSAGES_N * 3 + DUPLICATES:,} SMS status callbacks and {REPLIES:,} replies "
        f"through posfleet serve (SQLite, {CLIENTS} clients)"
    ]
    work = Path(tempfile.mkdtemp(prefix="posfleet-bench-loop-"))
    proc = None
    try:
        url = f"sqlite:///{work / 'fleet.db'}"
        _seed(url)
        engine = db.connect(url)
        secret = add_provider(engine, "bench", actor="bench")
        engine.dispose()
        proc, base = _serve(url, work)
        auth = ("bench", secret)
        docs = _callbacks(random.Random(15))
        status_url = f"{base}/api/v1/hooks/sms/bench/status"
        took, lat, codes = asyncio.run(_load(status_url, docs, auth))
        inbound_url = f"{base}/api/v1/hooks/sms/bench/inbound"
        r_took, r_lat, r_codes = asyncio.run(_load(inbound_url, _replies(), auth))
        probe = docs[:REFERENCE]
        h_took, h_lat, _ = asyncio.run(_load(f"{base}/health", probe, None, get=True))
        lost, doubled, notes = _check(url)
        bad = sum(n for code, n in (codes + r_codes).items() if code != 200)
        rate, h_rate = len(docs) / took, len(probe) / h_took
        p50, p95, p99 = (_pct(lat, p) for p in (0.5, 0.95, 0.99))
        lines += [
            f"callbacks: {len(docs):,} in {took:.1f} s = {rate:,.0f}/s; "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms",
            f"replies:   {REPLIES:,} in {r_took:.1f} s = {REPLIES / r_took:,.0f}/s; "
            f"p95 {_pct(r_lat, 0.95):.1f} ms",
            f"reference: GET /health (no database, {REFERENCE:,} requests) {h_rate:,.0f}/s, "
            f"p95 {_pct(h_lat, 0.95):.1f} ms; callbacks at {rate / h_rate:.2f}x its rate",
            f"lost state changes: {lost}, doubled: {doubled} (must be 0 and 0); non-200 answers: "
            f"{bad}; {', '.join(notes)}",
        ]
        if lost or doubled or bad:
            raise RuntimeError("\n".join(lines))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return lines


def _main() -> None:
    print("\n".join(run()))


if __name__ == "__main__":
    _main()
