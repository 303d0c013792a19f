"""The compliance gate of fee raises (issue 15, item 1): a raise reaches a merchant's
terminals no earlier than the delivery of its notice + the notice period. Real SMTP on
loopback for the notices, real ``possim`` terminals on ptys for the pushes and sales."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.models import AUDIT, MERCHANTS, MESSAGES, NOTICES, TERMINALS, now
from fleet.core.policy import FeePolicy, NoticePolicy
from fleet.device import DeviceSession, KeyRing, push_many, resolve
from fleet.fees import load_tables, publish
from fleet.fees.compliance import listing, table_for
from fleet.inventory import get_terminal
from fleet.notices.channels import FolderTransport, SmtpTransport
from fleet.notices.compose import compose
from fleet.notices.dispatch import Dispatcher
from fleet.notices.evidence import delivered_at
from protocols.mac import generate_master_key_file
from protocols.values import CardType
from tests.fleet.device.test_sync import merchant_mcc, possim
from tests.fleet.smtp_sink import smtp_server

OPEN = NoticePolicy(quiet=(0, 0), digest_s=0, max_per_window=100, backoff_s=0.0)
POLICY = FeePolicy()  # 30 days' notice; test sale 100.00 credit
OLD_FEE, NEW_FEE = 60, 80  # 0.60 % and 0.80 % of 100.00


def _table(path: Path, rate: str, effective: datetime) -> Path:
    path.write_text(
        f'name = "t{rate}"\ncurrency = "CNY"\neffective = {effective.isoformat()}\n'
        f'[[rules]]\nrate = "{rate}"\n',
        encoding="utf-8",
    )
    return path


def _three(engine: Engine) -> list[dict[str, Any]]:
    """Deployed terminals of three merchants in China, one each."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .join(MERCHANTS, MERCHANTS.c.id == TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == "deployed", TERMINALS.c.tid.is_not(None),
                   MERCHANTS.c.country == "CN")
            .order_by(TERMINALS.c.serial)
        ).all()  # fmt: skip
        seen: dict[str, str] = {}
        for serial, merchant in rows:
            seen.setdefault(merchant, serial)
        picked = [get_terminal(conn, s) for s in list(seen.values())[:3]]
    assert len(picked) == 3 and all(p is not None for p in picked)
    return picked  # type: ignore[return-value]


def _stored(state: Path) -> dict[str, tuple[int, datetime]]:
    """What the emulated terminal holds: role → (version, effective)."""
    db = sqlite3.connect(state / "terminal.db")
    try:
        rows = db.execute(
            "SELECT role, version, effective FROM fee_tables WHERE role IN ('active', 'pending')"
        ).fetchall()
    finally:
        db.close()
    return {r: (v, datetime.fromtimestamp(e, UTC)) for r, v, e in rows}


def test_a_raise_reaches_a_terminal_only_after_its_notice_and_the_notice_period(
    loaded: Engine, db_url: str, tmp_path: Path
) -> None:
    t = now().replace(microsecond=0)
    late_t, in_time_t, none_t = _three(loaded)
    late, in_time, none = (str(x["merchant_id"]) for x in (late_t, in_time_t, none_t))
    with loaded.begin() as conn:
        for m in (late, in_time):
            conn.execute(
                update(MERCHANTS)
                .where(MERCHANTS.c.id == m)
                .values(channels=["email"], opt_out=[], email=f"{m.lower()}@shop.example")
            )
        # no contact data: its notice fails (never delivered)
        conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == none).values(phone=None,
                                                                           email=None))  # fmt: skip
    publish(loaded, _table(tmp_path / "v1.toml", "0.60%", t - timedelta(days=50)), actor="ops",
            policy=POLICY, at=t - timedelta(days=50))  # fmt: skip
    effective = t + timedelta(days=1)  # 46 days after publication: fine at publication
    publish(loaded, _table(tmp_path / "v2.toml", "0.80%", effective), actor="ops",
            policy=POLICY, at=t - timedelta(days=45))  # fmt: skip
    compose(loaded, OPEN)
    with smtp_server() as (url, sink):
        Dispatcher(loaded, OPEN, {"email": SmtpTransport(url),
                                  "sms": FolderTransport(tmp_path / "out")}).run()  # fmt: skip
    assert {r.envelope_to[0] for r in sink.received} >= {f"{late.lower()}@shop.example"}
    with loaded.begin() as conn:  # the in-time merchant's email went out 40 days ago
        message = conn.execute(
            select(NOTICES.c.message_id).where(
                NOTICES.c.merchant_id == in_time, NOTICES.c.ref == "fee:2"
            )
        ).scalar_one()
        conn.execute(
            update(MESSAGES).where(MESSAGES.c.id == message).values(sent_at=t - timedelta(days=40))
        )
        tables = load_tables(conn)
        sent = conn.execute(select(MESSAGES).where(MESSAGES.c.id == message)).one()
        assert delivered_at(sent) == t - timedelta(days=40)

    # -- the listing: per merchant, delivered at, channel, effective at, days, compliant --
    with loaded.connect() as conn:
        version, found = listing(conn, POLICY)
    gates = {g.merchant_id: g for g in found}
    assert version == 2
    g_late, g_in, g_none = gates[late], gates[in_time], gates[none]
    assert (g_in.state, g_in.effective_at, g_in.days_of_notice) == ("in_time", effective, 41.0)
    assert g_late.state == "late" and g_late.channel == "email"
    assert g_late.delivered_at is not None and g_late.effective_at is not None
    moved = g_late.effective_at
    assert moved >= g_late.delivered_at + timedelta(days=30) > effective
    delay = g_late.delivered_at - (effective - timedelta(days=30))  # after the last in-time
    assert timedelta(0) <= (moved - effective) - delay < timedelta(seconds=1)  # moved by it
    assert (g_none.state, g_none.notice, g_none.effective_at) == ("waiting", "failed", None)
    assert (g_late.compliant, g_in.compliant, g_none.compliant) == (True, True, False)
    res = CliRunner().invoke(app, ["--db", db_url, "fees", "compliance", "-f", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    listed = {r["merchant"]: r for r in doc["merchants"]}
    assert doc["version"] == 2 and doc["counts"]["waiting"] >= 1
    assert listed[late]["effective_at"] == moved.isoformat()
    assert listed[in_time]["days_of_notice"] == 41.0 and listed[none]["compliant"] is False
    report = CliRunner().invoke(app, ["--db", db_url, "report", "notices", "-f", "json"])
    assert report.exit_code == 0, report.output
    section = {r["merchant"]: r for r in json.loads(report.stdout)["fee_compliance"]}
    assert section[none]["compliant"] is False and section[in_time]["compliant"] is True
    assert section[late]["state"] == "late" and section[late]["channel"] == "email"
    table_res = CliRunner().invoke(app, ["--db", db_url, "fees", "compliance", "2"])
    assert table_res.exit_code == 0 and "waiting" in table_res.stdout
    with loaded.connect() as conn:  # a reduction or no change is never held back
        assert table_for(conn, 1, none, tables, POLICY)[0] is tables[1].table

    # -- on real terminals ----------------------------------------------------------------
    key_file = tmp_path / "master.key"
    generate_master_key_file(key_file)
    keys = KeyRing.read([key_file])
    for row, expect in ((in_time_t, effective), (late_t, moved), (none_t, None)):
        state = tmp_path / f"sim-{row['serial']}"
        with possim(
            key_file, state, serial=str(row["serial"]), tid=str(row["tid"]),
            mid=str(row["mid"]), model=str(row["model"]), firmware=str(row["firmware"]),
            port="pty", mcc=merchant_mcc(loaded, row),
        ) as port:  # fmt: skip
            [first] = push_many(loaded, [str(row["serial"])], 1, keys=keys, policy=POLICY,
                                actor="ops", port=port)  # fmt: skip
            assert first.outcome is not None and first.outcome.test_fee == OLD_FEE, first
            [second] = push_many(loaded, [str(row["serial"])], 2, keys=keys, policy=POLICY,
                                 actor="ops", port=port)  # fmt: skip
            if expect is None:  # no delivery: refused, nothing sent, the old fee stays
                assert second.outcome is None and second.error is not None
                assert "no delivery evidence" in second.error
                with loaded.connect() as conn:
                    ref = resolve(conn, str(row["serial"]), port)
                with DeviceSession(ref, keys=keys) as dev:
                    sale = dev.host.sale(10_000, CardType.CREDIT, currency=156)
                    status = dev.host.status()
                assert sale.fee == OLD_FEE and (status.active_version,
                                                status.pending_version) == (1, 0)  # fmt: skip
            else:  # the raise waits on the terminal, effective when the notice allows
                assert second.outcome is not None, second.error
                assert second.outcome.test_fee == OLD_FEE  # priced with v1 until then
                assert second.outcome.pending_version == 2
        held = _stored(state)
        assert held["active"][0] == 1
        if expect is None:
            assert "pending" not in held
        else:
            assert held["pending"] == (2, expect)
    with loaded.connect() as conn:
        refused = conn.execute(
            select(AUDIT.c.target, AUDIT.c.details).where(AUDIT.c.action == "push_refused")
        ).all()
    assert [r.target for r in refused] == [f"terminal:{none_t['serial']}"]
    assert refused[0].details["rule"] == "notice_gate"
