"""10,000 merchant notices dispatched through a real SMTP server on loopback, exactly once.

The server is aiosmtpd in a process of its own (``tests.fleet.smtp_sink``), which keeps
every Message-ID it accepts. 10,000 merchants (e-mail preferred, English and Chinese) each
get one fee-change notice, queued in one transaction as publishing does. One ``posfleet
notices dispatch`` process then composes them under the contact rules (quiet hours off for
the run, digests of 0 min), renders the templates, and sends every message over one SMTP
connection (and again over 4: ``--connections 4``), marking each sent. Checked: 10,000
distinct Message-IDs received, each once, and every message ``sent`` in the database.
Targets: ≤ 30 s (issue 6); ≤ 1.2× bare smtplib over the same number of connections
(issue 18).

Reference, side by side in the same run: ``smtplib`` alone sending the same number of
pre-rendered messages to the same server over the same number of connections (a thread
each; no database, no rules, no templates) — the transport's own floor.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, insert, select

from fleet.core import db
from fleet.core.models import MERCHANTS, MESSAGES, NOTICES
from tests.fleet.smtp_sink import free_port

COUNT = 10_000
TARGET_S = 30.0
CONNECTIONS = (1, 4)
"""SMTP connections of the dispatcher, and of the reference beside it."""


def _server(port: int, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet.smtp_sink", str(port), str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def _received(proc: subprocess.Popen[str], out: Path) -> list[str]:
    proc.terminate()
    proc.wait(30)
    return [line for line in out.read_text().splitlines() if line]


def _seed(url: str) -> None:
    engine = db.connect(url)
    db.upgrade(engine)
    at = datetime.now(UTC) - timedelta(hours=1)
    merchants = [
        {
            "id": f"B{i:014d}", "name": f"Bench Merchant {i}", "mcc": 5411,
            "phone": f"+3538{i:08d}", "email": f"m{i}@bench.example",
            "language": "zh-CN" if i % 2 else "en",
            "timezone": "Asia/Shanghai" if i % 2 else "Europe/Dublin",
            "tags": [], "channels": ["email"], "opt_out": [],
        }
        for i in range(COUNT)
    ]  # fmt: skip
    payload = {
        "version": 2, "old_version": 1, "effective": "2027-03-01T00:00:00+08:00",
        "currency": "EUR", "basket_old": 312, "basket_new": 348, "direction": "up",
        "reason": "Annual scheme fee review", "sales": 4, "basket_total": 46_500,
    }  # fmt: skip
    with db.writer(engine).begin() as conn:
        conn.execute(insert(MERCHANTS), merchants)
        conn.execute(
            insert(NOTICES),
            [
                {"kind": "fee_change", "merchant_id": m["id"], "ref": "fee:2",
                 "payload": payload, "created_at": at, "status": "queued"}
                for m in merchants
            ],
        )  # fmt: skip
    engine.dispose()


def _reference(port: int, connections: int = 1) -> float:
    """Bare smtplib: the same number of pre-rendered mails over ``connections`` connections
    (a thread each), no database."""
    mails = []
    for i in range(COUNT):
        mail = EmailMessage()
        mail["From"], mail["To"] = "notices@posfleet.example", f"m{i}@bench.example"
        mail["Subject"], mail["Message-ID"] = f"Your card fees change (ref {i})", f"<ref-{i}@b>"
        mail.set_content("Dear merchant,\n\n" + "Your card fees change on 1 Mar 2027.\n" * 12)
        mails.append(mail)

    def send(part: list[EmailMessage]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for mail in part:
                smtp.send_message(mail)

    started = time.perf_counter()
    threads = [
        threading.Thread(target=send, args=(mails[i::connections],)) for i in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def run(connections: tuple[int, ...] = CONNECTIONS) -> list[str]:
    lines = ["## 10,000 notices through SMTP on loopback (aiosmtpd), exactly once"]
    for n in connections:
        lines += _one(n)
    return lines


def _one(connections: int) -> list[str]:
    lines = [f"### {connections} SMTP connection{'s' if connections > 1 else ''}"]
    with tempfile.TemporaryDirectory(prefix="posfleet-bench-notices-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'fleet.db'}"
        _seed(url)
        port = free_port()
        server = _server(port, work / "received.txt")
        policy = work / "policy.toml"
        policy.write_text('[notices]\nquiet_hours = "00:00-00:00"\ndigest_window = "0m"\n')
        env = dict(os.environ, POSFLEET_POLICY=str(policy))
        started = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("posfleet")), "--db", url, "notices",
             "dispatch", "--smtp", f"smtp://127.0.0.1:{port}", "--outbox", str(work / "out"),
             "--batch", "500", "--connections", str(connections), "--format", "json"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        received = _received(server, work / "received.txt")
        if done.returncode != 0:
            raise RuntimeError(f"dispatch failed: {done.stderr.strip()[-300:]}")
        engine = db.connect(url)
        with engine.connect() as conn:
            sent = conn.execute(
                select(func.count()).where(MESSAGES.c.status == "sent")
            ).scalar_one()
        engine.dispose()
        ref_server = _server(free_port(), work / "ref.txt")
        ref_port = int(ref_server.args[3])
        reference = _reference(ref_port, connections)
        ref_received = _received(ref_server, work / "ref.txt")
    once = len(received) == len(set(received)) == COUNT
    load = os.getloadavg()[0]
    lines += [
        f"posfleet notices dispatch (compose + render + send + record): {elapsed:.1f} s for "
        f"{sent:,} messages = {sent / elapsed:,.0f} msg/s (target ≤ {TARGET_S:.0f} s: "
        f"{elapsed / TARGET_S:.2f}x)",
        f"received by the server: {len(received):,}, distinct Message-IDs "
        f"{len(set(received)):,} → exactly once: {'yes' if once else 'NO'}",
        f"reference smtplib alone, pre-rendered, no database, {connections} connection(s): "
        f"{reference:.1f} s for {len(ref_received):,} = {COUNT / reference:,.0f} msg/s",
        f"ratio posfleet / bare smtplib: {elapsed / reference:.2f}x (target ≤ 1.2x: "
        f"{elapsed / reference / 1.2:.2f}x of it); load average {load:.1f}",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(run(tuple(int(a) for a in sys.argv[1:]) or CONNECTIONS)))
