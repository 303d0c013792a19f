"""Follow-up outcomes (回访, issue 15 item 6): reached with satisfaction and issues, not
reached and retried by the policy, and the swaps report."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from fleet.cli import app
from fleet.core.errors import ConflictError, InputError, NotFoundError
from fleet.core.models import AUDIT, NOTICES, SWAPS, TERMINALS
from fleet.core.policy import Policy, PolicyError
from fleet.swaps import plan, swap
from fleet.swaps.followup import record_follow_up

runner = CliRunner()
POLICY = Policy()  # 3 tries, 2 days apart, as call tasks


def _pick(engine: Engine, status: str, n: int) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TERMINALS.c.serial, TERMINALS.c.merchant_id)
            .where(TERMINALS.c.status == status)
            .order_by(TERMINALS.c.serial)
        ).all()
    if status == "in_stock":
        return [r.serial for r in rows[:n]]
    seen: dict[str, str] = {}
    for serial, merchant in rows:
        if merchant:
            seen.setdefault(merchant, serial)
    return list(seen.values())[:n]


def test_follow_up_outcomes_retries_and_the_swaps_report(loaded: Engine, db_url: str) -> None:
    olds = _pick(loaded, "deployed", 4)
    news = _pick(loaded, "in_stock", 3)
    a = swap(loaded, olds[0], news[0], actor="t", policy=POLICY, engineer="Li Wei")
    b = swap(loaded, olds[1], news[1], actor="t", policy=POLICY, engineer="Li Wei")
    c = swap(loaded, olds[2], news[2], actor="t", policy=POLICY, engineer="Ana Ruiz")
    planned = plan(loaded, olds[3], date.today() + timedelta(days=10), actor="t",
                   policy=POLICY)  # fmt: skip

    # reached, happy
    done = record_follow_up(loaded, a.id, reached=True, satisfaction=5, actor="agent",
                            policy=POLICY)  # fmt: skip
    assert (done.state, done.attempts, done.satisfaction, done.issue_open) == ("done", 1, 5, False)
    with pytest.raises(ConflictError, match="reached already"):
        record_follow_up(loaded, a.id, reached=True, satisfaction=4, actor="agent", policy=POLICY)

    # not reached: retried by the policy, then unreached
    for attempt in (1, 2):
        again = record_follow_up(loaded, b.id, reached=False, actor="agent", policy=POLICY)
        assert (again.state, again.attempts) == ("due", attempt)
        assert again.next_due is not None and again.next_due >= date.today() + timedelta(days=1)
    last = record_follow_up(loaded, b.id, reached=False, actor="agent", policy=POLICY)
    assert (last.state, last.attempts, last.next_due) == ("unreached", 3, None)
    with loaded.connect() as conn:
        tries = conn.execute(
            select(NOTICES.c.ref, NOTICES.c.channel, NOTICES.c.not_before)
            .where(NOTICES.c.kind == "follow_up", NOTICES.c.ref.like(f"swap:{b.id}%"))
            .order_by(NOTICES.c.id)
        ).all()
    assert [t.ref for t in tries] == [f"swap:{b.id}", f"swap:{b.id}:try2", f"swap:{b.id}:try3"]
    assert all(t.channel == "call" for t in tries)
    assert tries[1].not_before > tries[0].not_before - timedelta(days=30)

    # bad input changes nothing
    with pytest.raises(InputError, match="want 1 to 5"):
        record_follow_up(loaded, c.id, reached=True, satisfaction=6, actor="x", policy=POLICY)
    with pytest.raises(InputError, match="gives no satisfaction"):
        record_follow_up(loaded, c.id, reached=False, satisfaction=3, actor="x", policy=POLICY)
    with pytest.raises(InputError, match="satisfaction of 1 to 5"):
        record_follow_up(loaded, c.id, reached=True, actor="x", policy=POLICY)
    with pytest.raises(ConflictError, match="is planned"):
        record_follow_up(loaded, planned.id, reached=True, satisfaction=3, actor="x",
                         policy=POLICY)  # fmt: skip
    with pytest.raises(NotFoundError):
        record_follow_up(loaded, 99_999, reached=False, actor="x", policy=POLICY)

    # the CLI: reached, unhappy, with an issue (text from an agent: kept as typed)
    base = ["--db", db_url, "--actor", "agent"]
    bad = runner.invoke(app, [*base, "swap", "follow-up", str(c.id), "--reached", "yes",
                              "--satisfaction", "9"])  # fmt: skip
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.output
    res = runner.invoke(app, [*base, "swap", "follow-up", str(c.id), "--reached", "yes",
                              "--satisfaction", "2", "--issue", "=receipt printer jams",
                              "-f", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) | {"next_due": None} == {
        "swap": c.id, "state": "done", "attempts": 1, "next_due": None, "satisfaction": 2,
        "issue_open": True,
    }  # fmt: skip
    with loaded.connect() as conn:
        record = conn.execute(select(SWAPS).where(SWAPS.c.id == c.id)).one()
        audited = (
            conn.execute(select(AUDIT.c.reason).where(AUDIT.c.action == "swap_follow_up"))
            .scalars()
            .all()
        )
    assert (record.follow_up_issue, record.issue_open) == ("=receipt printer jams", True)
    assert len(audited) == 5 and "=receipt printer jams" in audited

    # the swaps report: satisfaction by engineer, model and region; open issues
    rep = runner.invoke(app, ["--db", db_url, "report", "swaps", "-f", "json"])
    assert rep.exit_code == 0, rep.output
    doc = json.loads(rep.stdout)
    engineers = {r["engineer"]: r for r in doc["by_engineer"]}
    assert (engineers["Li Wei"]["swaps"], engineers["Li Wei"]["reached"]) == (2, 1)
    assert engineers["Li Wei"]["satisfaction"] == "5.00"
    assert engineers["Ana Ruiz"]["satisfaction"] == "2.00" and engineers["Ana Ruiz"]["unhappy"] == 1
    assert sum(r["swaps"] for r in doc["by_model"]) == 3
    assert sum(r["reached"] for r in doc["by_region"]) == 2
    assert {r["state"]: r["swaps"] for r in doc["follow_ups"]} == {"done": 2, "unreached": 1}
    assert [i["swap"] for i in doc["open_issues"]] == [c.id]
    assert doc["summary"]["satisfaction"] == 3.5
    csv_out = runner.invoke(app, ["--db", db_url, "report", "swaps", "-f", "csv"])
    assert csv_out.exit_code == 0 and csv_out.stdout.startswith("engineer,")
    table = runner.invoke(app, ["--db", db_url, "report", "swaps"])
    assert table.exit_code == 0 and "Open issues" in table.stdout

    closed = runner.invoke(app, [*base, "swap", "follow-up", str(c.id), "--reached", "yes",
                                 "--close-issue"])  # fmt: skip
    assert closed.exit_code == 0, closed.output
    after = json.loads(runner.invoke(app, ["--db", db_url, "report", "swaps", "-f",
                                           "json"]).stdout)  # fmt: skip
    assert after["open_issues"] == []


def test_follow_up_retry_policy() -> None:
    p = Policy.from_toml('[swaps]\nfollow_up_attempts = 5\nfollow_up_retry_after = "3d"\n')
    assert (p.swaps.follow_up_attempts, p.swaps.follow_up_retry_days) == (5, 3)
    assert Policy.from_toml(p.to_toml()).swaps == p.swaps
    for bad, message in [
        ("[swaps]\nfollow_up_attempts = 0", "want 1 to 20"),
        ('[swaps]\nfollow_up_attempts = "3"', "not a whole number"),
        ('[swaps]\nfollow_up_retry_after = "soon"', "follow_up_retry_after"),
    ]:
        with pytest.raises(PolicyError, match=message):
            Policy.from_toml(bad)
