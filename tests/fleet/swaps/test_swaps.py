"""Swaps on SQLite and PostgreSQL: one transaction, all or nothing; plans, day sheets,
bad input; the CLI."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

import fleet.swaps.visit
from fleet.cli import app
from fleet.core.errors import InputError, NotFoundError
from fleet.core.models import AUDIT, MERCHANTS, NOTICES, SWAPS, TERMINALS, now
from fleet.core.policy import Policy
from fleet.core.records import RejectedFileError
from fleet.inventory import get_terminal
from fleet.swaps import SwapError, day_sheet, plan, swap

POLICY = Policy()


def pick(engine: Engine, status: str, n: int = 1, merchant: bool = False) -> list[str]:
    query = select(TERMINALS.c.serial).where(TERMINALS.c.status == status)
    if merchant:
        query = query.where(TERMINALS.c.merchant_id.is_not(None), TERMINALS.c.tid.is_not(None))
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(TERMINALS.c.serial).limit(n)).scalars())


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a swap may touch."""
    with engine.connect() as conn:
        return {
            "terminals": [tuple(r) for r in conn.execute(select(TERMINALS).order_by("serial"))],
            "swaps": conn.execute(select(func.count()).select_from(SWAPS)).scalar_one(),
            "notices": conn.execute(select(func.count()).select_from(NOTICES)).scalar_one(),
            "audit": conn.execute(select(func.count()).select_from(AUDIT)).scalar_one(),
        }


def test_swap_hands_everything_over_in_one_transaction(loaded: Engine) -> None:
    old = pick(loaded, "deployed", merchant=True)[0]
    new = pick(loaded, "in_stock")[0]
    with loaded.connect() as conn:
        before = get_terminal(conn, old)
    assert before is not None
    result = swap(loaded, old, new, reason="PCI PTS approval expired", actor="ana",
                  policy=POLICY, engineer="Li Wei")  # fmt: skip
    with loaded.connect() as conn:
        o, n = get_terminal(conn, old), get_terminal(conn, new)
        assert o is not None and n is not None
        assert o["status"] == "swapped_out" and o["tid"] == before["tid"]  # kept, history too
        assert n["status"] == "deployed"
        assert (n["tid"], n["mid"], n["merchant_id"]) == (
            before["tid"], before["mid"], before["merchant_id"]
        )  # fmt: skip
        record = conn.execute(select(SWAPS).where(SWAPS.c.id == result.id)).one()
        assert (record.status, record.old_serial, record.new_serial) == ("done", old, new)
        assert record.engineer == "Li Wei" and record.follow_up_on == result.follow_up_on
        notices = conn.execute(
            select(NOTICES.c.kind, NOTICES.c.channel, NOTICES.c.not_before, NOTICES.c.payload)
            .where(NOTICES.c.ref == f"swap:{result.id}")
            .order_by(NOTICES.c.id)
        ).all()
        assert [x.kind for x in notices] == ["swap_done", "follow_up"]
        assert notices[0].payload["new"] == new and notices[0].payload["tid"] == before["tid"]
        assert notices[1].channel == "call"  # the default follow-up is a call task
        assert notices[1].not_before.date() >= date.today() + timedelta(days=6)
        entry = conn.execute(select(AUDIT).where(AUDIT.c.action == "swap")).one()
        assert entry.actor == "ana" and entry.details["new"] == new
        assert entry.reason == "PCI PTS approval expired"


def test_a_swap_that_fails_midway_changes_nothing(
    loaded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = pick(loaded, "deployed", merchant=True)[0]
    new = pick(loaded, "in_stock")[0]
    before = snapshot(loaded)
    calls = []

    def queue_then_fail(*args: Any, **kwargs: Any) -> None:
        calls.append(args[1].kind)
        if len(calls) == 2:  # terminals updated, swap written, first notice queued
            raise RuntimeError("the database went away")
        real_queue(*args, **kwargs)

    real_queue = fleet.swaps.visit.queue
    monkeypatch.setattr(fleet.swaps.visit, "queue", queue_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        swap(loaded, old, new, reason="test", actor="t", policy=POLICY)
    assert calls == ["swap_done", "follow_up"]
    assert snapshot(loaded) == before


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("unknown old", NotFoundError, "unknown terminal PS99999999"),
        ("unknown new", NotFoundError, "unknown terminal PS99999999"),
        ("new already deployed", SwapError, "is deployed at merchant .* not in stock"),
        ("old in stock", SwapError, "is in_stock, not deployed or faulty"),
        ("no contact data", SwapError, "has no phone or email"),
        ("itself", SwapError, "can't replace itself"),
        ("bad reason code", InputError, "'because' is not a reason code"),
    ],
)
def test_bad_swaps_are_refused_and_change_nothing(
    loaded: Engine, case: str, error: type[Exception], message: str
) -> None:
    deployed = pick(loaded, "deployed", 2, merchant=True)
    stock = pick(loaded, "in_stock", 2)
    old, new, reason = deployed[0], stock[0], "replacement"
    if case == "unknown old":
        old = "PS99999999"
    elif case == "unknown new":
        new = "PS99999999"
    elif case == "new already deployed":
        new = deployed[1]
    elif case == "old in stock":
        old = stock[1]
    elif case == "no contact data":
        with loaded.begin() as conn:
            merchant = conn.execute(
                select(TERMINALS.c.merchant_id).where(TERMINALS.c.serial == old)
            ).scalar_one()
            conn.execute(
                update(MERCHANTS).where(MERCHANTS.c.id == merchant).values(phone=None, email=None)
            )
    elif case == "itself":
        new = old
    code = "because" if case == "bad reason code" else None
    before = snapshot(loaded)
    with pytest.raises(error, match=message):
        swap(loaded, old, new, reason=reason, actor="t", policy=POLICY, reason_code=code)
    assert snapshot(loaded) == before


def test_plan_then_swap_completes_the_plan(loaded: Engine) -> None:
    old = pick(loaded, "deployed", merchant=True)[0]
    new = pick(loaded, "in_stock")[0]
    on = date.today() + timedelta(days=10)
    planned = plan(loaded, old, on, reason="model end of support", actor="ops", policy=POLICY)
    with pytest.raises(SwapError, match="already has swap"):
        plan(loaded, old, on, reason="again", actor="ops", policy=POLICY)
    with pytest.raises(SwapError, match="too soon"):
        other = pick(loaded, "deployed", 2, merchant=True)[1]
        plan(loaded, other, date.today() + timedelta(days=1), reason="x", actor="o", policy=POLICY)
    done = swap(loaded, old, new, reason="model end of support", actor="eng", policy=POLICY)
    assert done.id == planned.id
    with loaded.connect() as conn:
        record = conn.execute(select(SWAPS).where(SWAPS.c.id == planned.id)).one()
        kinds = conn.execute(
            select(NOTICES.c.kind).where(NOTICES.c.ref == f"swap:{planned.id}").order_by("id")
        ).scalars()
        assert (record.status, record.planned_for, record.new_serial) == ("done", on, new)
        assert list(kinds) == ["swap_planned", "swap_done", "follow_up"]


def _sheet(path: Path, rows: list[str]) -> Path:
    path.write_text("old_serial,new_serial,reason,engineer,reason_code\n" + "\n".join(rows) + "\n")
    return path


def test_a_day_sheet_is_all_or_nothing(loaded: Engine, tmp_path: Path) -> None:
    deployed = pick(loaded, "deployed", 3, merchant=True)
    stock = pick(loaded, "in_stock", 3)
    before = snapshot(loaded)
    bad = _sheet(
        tmp_path / "bad.csv",
        [
            f"{deployed[0]},{stock[0]},PTS expired,Li Wei,pci_expiry",
            f"{deployed[1]},PS99999999,faulty,Li Wei,faulty",  # unknown replacement
            f"{deployed[2]},{stock[0]},faulty,Li Wei,",  # stock[0] used twice
            f"{deployed[2]},{stock[2]},,Li Wei,because",  # no such reason code
        ],
    )
    with pytest.raises(RejectedFileError) as caught:
        day_sheet(loaded, bad, actor="eng", policy=POLICY)
    messages = [str(e) for e in caught.value.errors]
    assert f"{bad}:3: unknown terminal PS99999999" in messages
    assert any(
        m.startswith(f"{bad}:4: new_serial: {stock[0]} is already on line 2") for m in messages
    )
    assert any(m.startswith(f"{bad}:5:") and "'because' is not a reason code" in m
               for m in messages)  # fmt: skip
    assert snapshot(loaded) == before
    good = _sheet(
        tmp_path / "good.csv",
        [f"{deployed[i]},{stock[i]},PTS expired,Li Wei,pci_expiry" for i in range(3)],
    )
    done = day_sheet(loaded, good, actor="eng", policy=POLICY)
    assert [r.old for r, _ in done] == deployed
    with loaded.connect() as conn:
        statuses = dict(
            conn.execute(
                select(TERMINALS.c.serial, TERMINALS.c.status).where(
                    TERMINALS.c.serial.in_(deployed + stock)
                )
            ).all()
        )
    assert {statuses[s] for s in deployed} == {"swapped_out"}
    assert {statuses[s] for s in stock} == {"deployed"}


def test_cli_swap_plan_list_and_errors(loaded: Engine, db_url: str) -> None:
    runner = CliRunner()
    deployed = pick(loaded, "deployed", 2, merchant=True)
    stock = pick(loaded, "in_stock", 1)
    base = ["--db", db_url, "--actor", "cli"]
    on = (now().date() + timedelta(days=14)).isoformat()
    planned = runner.invoke(
        app, [*base, "swap", "plan", deployed[0], "--on", on, "--reason", "end of support"]
    )
    assert planned.exit_code == 0, planned.output
    assert "planned" in planned.output and "swap_planned" in planned.output
    done = runner.invoke(
        app, [*base, "swap", deployed[0], stock[0], "--reason", "end of support", "-f", "json"]
    )
    assert done.exit_code == 0, done.output
    assert '"status": "done"' in done.output and f'"new": "{stock[0]}"' in done.output
    again = runner.invoke(app, [*base, "swap", deployed[1], stock[0], "--reason", "x"])
    assert again.exit_code == 1 and "not in stock" in again.output
    bad_code = runner.invoke(app, [*base, "swap", deployed[1], stock[0], "--reason-code", "x"])
    assert bad_code.exit_code == 2 and "'x' is not a reason code" in bad_code.stderr
    bad_date = runner.invoke(app, [*base, "swap", "plan", deployed[1], "--on", "soon",
                                   "--reason", "x"])  # fmt: skip
    assert bad_date.exit_code == 2
    listed = runner.invoke(app, [*base, "swap", "list", "-f", "csv"])
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].startswith("id,status,old_serial,new_serial")
    assert f"done,{deployed[0]},{stock[0]}" in listed.output
