"""The events outbox: each kind is written by its domain in the transaction of what
happened (SQLite and PostgreSQL), and a refused change writes none."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from fleet.core.errors import InputError
from fleet.core.events import emit
from fleet.core.models import EVENTS, MODELS, TERMINALS, VERIFICATIONS
from fleet.core.policy import Policy
from fleet.notices.verify import verify
from fleet.replacements.flags import record_p1
from fleet.swaps import SwapError, plan, swap
from tests.fleet.swaps.test_swaps import pick


def events(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            r.payload
            for r in conn.execute(select(EVENTS).where(EVENTS.c.kind == kind).order_by(EVENTS.c.id))
        ]


def test_emit_refuses_an_unknown_kind(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(InputError, match="unknown event kind"):
        emit(conn, "swap.exploded", {})


def test_swaps_emit_planned_and_done(loaded: Engine) -> None:
    old, other = pick(loaded, "deployed", 2, merchant=True)
    new = pick(loaded, "in_stock")[0]
    on = date.today() + timedelta(days=10)
    planned = plan(loaded, old, on, reason="model end of support", actor="ops", policy=Policy())
    with pytest.raises(SwapError):  # refused: no event
        plan(loaded, other, date.today(), reason="x", actor="ops", policy=Policy())
    swap(loaded, old, new, reason="model end of support", actor="eng", policy=Policy())
    [p] = events(loaded, "swap.planned")
    assert p == p | {"swap": planned.id, "old_serial": old, "planned_for": on.isoformat()}
    [d] = events(loaded, "swap.done")
    assert (d["swap"], d["old_serial"], d["new_serial"]) == (planned.id, old, new)
    assert "phone" not in str(d) and "@" not in str(d)


def test_verify_logs_every_check_and_emits_not_genuine(loaded: Engine) -> None:
    answer = verify(
        loaded, "zzzzz zzzzz", actor="agent-7", address="10.1.2.3", caller="M00000000000004"
    )
    assert not answer.genuine
    [e] = events(loaded, "verify.not_genuine")
    assert e["code"] == "ZZZZZ-ZZZZZ" and e["caller"] == "M00000000000004" and e["region"]
    with loaded.connect() as conn:
        row = conn.execute(select(VERIFICATIONS)).one()
    assert (row.genuine, row.actor, row.address, row.region) == (
        False,
        "agent-7",
        "10.1.2.3",
        e["region"],
    )


def test_terminals_newly_p1_are_flagged_once(loaded: Engine) -> None:
    policy = Policy().replacement
    today = date.today()
    assert record_p1(loaded, policy, today) == []  # the baseline: no news
    assert events(loaded, "terminal.flagged") == []
    with loaded.connect() as conn:
        serial, model = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.model)
            .where(TERMINALS.c.status == "deployed")
            .order_by(TERMINALS.c.serial)
        ).first()  # type: ignore[misc]
    with loaded.begin() as conn:  # its model's PCI PTS approval lapses: P1 for every one
        conn.execute(
            update(MODELS)
            .where(MODELS.c.code == model)
            .values(pts_expires_on=today - timedelta(days=1))
        )
    new = record_p1(loaded, policy, today)
    assert serial in new
    flagged = events(loaded, "terminal.flagged")
    assert {e["serial"] for e in flagged} == set(new)
    assert all(e["priority"] == "P1" and "pts" in e["reasons"] for e in flagged)
    assert record_p1(loaded, policy, today) == []  # not news twice
    assert len(events(loaded, "terminal.flagged")) == len(flagged)


def test_a_message_failed_for_good_emits_notice_failed(loaded: Engine) -> None:
    from fleet.core.models import MESSAGES  # noqa: PLC0415
    from tests.fleet.reports.test_reports_browser import seed_notices  # noqa: PLC0415

    seed_notices(loaded)  # its gateway fails some messages for good
    with loaded.connect() as conn:
        failed = (
            conn.execute(select(MESSAGES.c.code).where(MESSAGES.c.status == "failed"))
            .scalars()
            .all()
        )
    emitted = events(loaded, "notice.failed")
    assert failed and sorted(e["message"] for e in emitted) == sorted(failed)
    assert all("@" not in e["error"] and "+" not in e["error"] for e in emitted)
